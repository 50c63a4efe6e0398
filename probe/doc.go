// Package probe answers, in the bridge itself, the few exec commands that
// SFTP tools send to learn about the files they uploaded, so that asking
// does not start a one-off, which would take the pending files with it.
//
// The commands are exactly those of rclone's SFTP backend (rclone 1.60,
// backend/sftp): its shell-type probe `echo ${ShellId}%ComSpec%`, its
// hash-command probes `md5sum` and `sha1sum` on an empty standard input,
// and `md5sum PATH` / `sha1sum PATH` of one file under /tmp/uploads, the
// path written as one shell word without expansions (rclone escapes it
// with backslashes; single and double quotes are read too). The answers
// are what those commands print in a one-off that received the pending
// files: the bytes hashed are the pending file's. Any other command line,
// a path outside /tmp/uploads or one the shell would expand included, is
// not a probe and goes to a one-off verbatim.
package probe

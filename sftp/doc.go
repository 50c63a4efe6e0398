// Package sftp serves the SFTP subsystem of the bridge over the upload
// staging area, with github.com/pkg/sftp's request server (never its plain
// Server, which would serve the bridge's own disk).
//
// The client sees one directory, /tmp/uploads, its home and start directory:
// the files pending for its (user, app) scope, with subdirectories. Writes
// create pending files, get reads them back, and ls, rm, rename (plain,
// which never replaces, and posix-rename@openssh.com, which does), mkdir,
// rmdir, chmod, utimes, stat, lstat, realpath and statvfs work on them.
// Links (hard and symbolic) are refused; the server announces only
// posix-rename@openssh.com and statvfs@openssh.com, not hardlink. Any path outside /tmp/uploads is
// refused with SSH_FX_PERMISSION_DENIED; errors reach the client as SFTP
// status codes with a short message, never as internal errors.
package sftp

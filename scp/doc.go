// Package scp answers legacy scp (`scp -O`, OpenSSH's scp before 9.0) on
// the bridge itself: the client runs `scp -t [-r] [-d] [-p] target` on the
// server and speaks the scp protocol to its stdin and stdout, which this
// package serves into the upload staging area, so that no scp binary is
// needed anywhere. `scp -f` (download) serves pending files back.
//
// The protocol, as OpenSSH's scp.c speaks it: the sender writes records
// ("C0644 <size> <name>\n" then the bytes then "\0" for a file,
// "D0755 0 <name>\n" ... "E\n" for a directory, "T<mtime> 0 <atime> 0\n"
// before either with -p); the receiver answers each with "\0", or with
// "\x01scp: <message>\n" for an error the sender skips (or "\x02" for a fatal
// one). The exit status is 0 when no error was reported, 1 otherwise.
package scp

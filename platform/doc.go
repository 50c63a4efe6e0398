// Package platform is the embedded platform: a real HTTP server of the
// one-off container API (PROTOCOL.md), wire-compatible with Scalingo's CLI.
//
// Each one-off runs `/bin/sh -c <command>` as a local process tree, on a
// pseudo-terminal or, in pipe mode, on plain pipes. Where the host allows it
// (root, or user namespaces) the tree lives in its own PID and mount
// namespaces with a private /tmp, under a small init that is this very binary
// re-executed: main() must call RunInitIfRequested first thing. It also gets
// a network namespace of its own whose only interface is a loopback, so
// that 127.0.0.1 inside is the one-off's alone, unless Config.HostNetwork
// gives it the host's network or the host allows no network namespace
// (Platform.OwnNetwork says which).
//
// The process starts on attach, so that files uploaded before attaching are in
// /tmp/uploads when the command runs. The whole tree is killed when the attach
// connection breaks, when it is never attached in time, or after a period with
// no data either way (then /wait answers 408).
//
// # Pipe mode
//
// A run whose body has "tty": false gets pipe mode, and says so with
// "tty": false in its container and in start_one_off_data (terminal mode
// echoes nothing); with Config.NoPipeMode it gets a terminal and no echo,
// as from a platform without the extension. The command runs with no terminal: its stdin is a pipe
// fed with the bytes the client sends on the attach stream, untouched (no
// line discipline, no control characters, no \n to \r\n); its stdout and
// stderr are one pipe whose bytes come back on the stream, interleaved in the
// order they were written. The client's TCP half-close (FIN, CloseWrite) is
// the command's stdin EOF, and the output keeps flowing after it. The
// platform closes the stream once the process tree has exited and all its
// output is written; /wait then has the exit code. A FIN alone cannot say
// whether the client closed its socket or only its sending side, so: a
// client on this host (the bridge of the default mode) that closes its
// socket is seen in the host's TCP table and its one-off killed; a client
// elsewhere that gives up should reset the connection (SO_LINGER 0, then
// close), or its one-off lives on until it exits, writes output that the
// closed socket refuses, or reaches the inactivity timeout.
package platform

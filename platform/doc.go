// Package platform is the embedded platform: a real HTTP server of the
// one-off container API (PROTOCOL.md), wire-compatible with Scalingo's CLI.
//
// Each one-off runs `/bin/sh -c <command>` as a local process tree, on a
// pseudo-terminal or, in pipe mode, on plain pipes. Where the host allows it
// (root, or user namespaces) the tree lives in its own PID and mount
// namespaces with a private /tmp, under a small init that is this very binary
// re-executed: main() must call RunInitIfRequested first thing.
//
// The process starts on attach, so that files uploaded before attaching are in
// /tmp/uploads when the command runs. The whole tree is killed when the attach
// connection ends, when it is never attached in time, or after a period with
// no data either way (then /wait answers 408).
package platform

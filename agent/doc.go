// Package agent is the program that runs inside a one-off container in
// connection mode (issue 14, DESIGN.md "Connection mode"): an SSH server
// that speaks SSH's connection protocol (RFC 4254) over a single stream,
// the one-off's own stdin and stdout, so that every channel of one client
// connection is served inside the same container.
//
// The bridge (bridge/agentconn.go) uploads it into the connection's
// one-off with the pending files, runs LaunchCommand as the one-off's
// command, and connects to it as an SSH client over the attach stream; Main
// is its entry point there (as `bridge agent` or cmd/bridge-agent).
//
// # Authentication
//
// Serve accepts any client without authentication (ssh.ServerConfig's
// NoClientAuth). This is acceptable only here: the stream is the
// one-off's own stdin and stdout, which only the bridge reaches, through
// its attach to that one-off. The bridge is the trust boundary: it has
// authenticated the user and enforces policy (forwarding targets, key
// options) before it relays a channel or request to the agent. The host
// key is one the bridge generates for the connection and passes in, so the
// bridge can pin it. The agent runs with the container's rights and
// enforces nothing itself.
//
// # What it serves
//
// Session channels (RFC 4254 section 6): "env", "pty-req" (a real pty,
// with TERM and the size), "window-change", "shell", "exec" (Config.Shell
// -c COMMAND, stderr sent as extended data, section 5.2), "signal"
// (delivered to the process group of the command, section 6.9), the "sftp"
// subsystem over the container's real filesystem, and at the end
// "exit-status" or "exit-signal" (section 6.10), then EOF, then close.
//
// A command still running when its channel is closed gets SIGHUP, as on a
// terminal hangup.
//
// "direct-tcpip" channels (section 7.2): the agent dials the given host
// and port from inside the container. "direct-streamlocal@openssh.com"
// channels (OpenSSH's PROTOCOL, section 2.4): it connects to the given
// Unix socket inside the container.
//
// "tcpip-forward" and "cancel-tcpip-forward" global requests (section
// 7.1): the agent listens inside the container and opens a
// "forwarded-tcpip" channel to the client for each connection it accepts.
// Listeners close when the connection ends.
//
// Other global requests and any other channel type are refused.
//
// MakeRaw is for the agent's entry point: on a PaaS without pipe mode its
// stdin and stdout are a terminal, which must be raw before the first byte
// of SSH goes out.
package agent

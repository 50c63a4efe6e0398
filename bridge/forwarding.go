package bridge

import (
	"log/slog"
	"net"
	"strconv"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Forwarding is refused in every form: a one-off exposes no ports to the
// bridge, and the bridge must not become a network pivot. Each refusal is
// logged with what was asked for; payloads that do not parse are logged
// with an empty target, and within the connection's limits on refusal
// lines (refusals.go).

// Payloads of the forwarding requests and channels: RFC 4254 sections 7.1
// and 7.2, and OpenSSH's PROTOCOL section 2.4 for Unix-domain sockets.
type (
	tcpipForwardMsg struct {
		Address string
		Port    uint32
	}
	directTCPIPMsg struct {
		Host           string
		Port           uint32
		OriginatorIP   string
		OriginatorPort uint32
	}
	streamlocalForwardMsg struct {
		SocketPath string
	}
	directStreamlocalMsg struct {
		SocketPath string
		Reserved   string
		Reserved2  uint32
	}
)

const forwardingRefused = "port forwarding is not supported by this bridge"

// refuseChannel turns down direct-tcpip (ssh -L, -D, -W) and
// direct-streamlocal@openssh.com (ssh -L to a socket path) channels.
func (s *Server) refuseChannel(_ *ssh.Server, _ *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	target := ""
	switch newChan.ChannelType() {
	case "direct-tcpip":
		var msg directTCPIPMsg
		if gossh.Unmarshal(newChan.ExtraData(), &msg) == nil {
			target = hostPort(msg.Host, msg.Port)
		}
	case "direct-streamlocal@openssh.com":
		var msg directStreamlocalMsg
		if gossh.Unmarshal(newChan.ExtraData(), &msg) == nil {
			target = msg.SocketPath
		}
	}
	logRefusal(stateOf(ctx), connLogger(ctx, s.log), slog.LevelInfo, "refused forwarding", "type", newChan.ChannelType(), "target", cut(target, logNameBytes))
	newChan.Reject(gossh.Prohibited, forwardingRefused)
}

// refuseGlobal turns down tcpip-forward and streamlocal-forward@openssh.com
// (ssh -R) and their cancellations.
func (s *Server) refuseGlobal(ctx ssh.Context, _ *ssh.Server, req *gossh.Request) (bool, []byte) {
	target := ""
	switch req.Type {
	case "tcpip-forward", "cancel-tcpip-forward":
		var msg tcpipForwardMsg
		if gossh.Unmarshal(req.Payload, &msg) == nil {
			target = hostPort(msg.Address, msg.Port)
		}
	case "streamlocal-forward@openssh.com", "cancel-streamlocal-forward@openssh.com":
		var msg streamlocalForwardMsg
		if gossh.Unmarshal(req.Payload, &msg) == nil {
			target = msg.SocketPath
		}
	}
	logRefusal(stateOf(ctx), connLogger(ctx, s.log), slog.LevelInfo, "refused forwarding", "type", req.Type, "target", cut(target, logNameBytes))
	return false, nil
}

func hostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

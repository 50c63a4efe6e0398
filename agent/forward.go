package agent

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

// directTCPIP is the "direct-tcpip" channel-open payload, RFC 4254
// section 7.2.
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// serveDirectTCPIP dials the requested host and port from inside the
// container and relays bytes both ways, passing each side's EOF on as a
// half-close. A failed dial rejects the channel with "connect failed" and
// the dial error (section 7.2).
func serveDirectTCPIP(ctx context.Context, nc ssh.NewChannel, cfg *Config) {
	var p directTCPIP
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.FormatUint(uint64(p.Port), 10))
	forward(ctx, nc, cfg, "tcp", addr)
}

// directStreamlocal is the "direct-streamlocal@openssh.com" channel-open
// payload (OpenSSH's PROTOCOL, section 2.4): a Unix socket path and two
// reserved fields.
type directStreamlocal struct {
	SocketPath string
	Reserved0  string
	Reserved1  uint32
}

// serveDirectStreamlocal connects to the requested Unix socket inside the
// container and relays bytes both ways, as serveDirectTCPIP does.
func serveDirectStreamlocal(ctx context.Context, nc ssh.NewChannel, cfg *Config) {
	var p directStreamlocal
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed direct-streamlocal request")
		return
	}
	forward(ctx, nc, cfg, "unix", p.SocketPath)
}

// forward dials network and addr and relays the accepted channel to it.
func forward(ctx context.Context, nc ssh.NewChannel, cfg *Config, network, addr string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		cfg.Logger.Info("forward refused", "type", nc.ChannelType(), "target", addr, "err", err)
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	cfg.Logger.Info("forward", "type", nc.ChannelType(), "target", addr)
	relay(ch, conn)
}

// relay copies bytes both ways between ch and conn, passing each side's
// EOF on as a half-close, and closes both once both directions end.
func relay(ch ssh.Channel, conn net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(conn, ch)
		if hc, ok := conn.(interface{ CloseWrite() error }); ok {
			hc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		io.Copy(ch, conn)
		ch.CloseWrite()
	}()
	wg.Wait()
	conn.Close()
	ch.Close()
}

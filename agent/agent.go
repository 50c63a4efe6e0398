package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// Config is what Serve needs to serve one connection.
type Config struct {
	// HostKey is the agent's host key; required. The bridge generates
	// one per connection and pins it when it connects as the client.
	HostKey ssh.Signer
	// Shell runs commands as Shell -c COMMAND and shells as Shell alone.
	// Zero value: /bin/sh.
	Shell string
	// Env is the environment every command starts with, KEY=VALUE
	// entries; the session's "env" requests and the pty's TERM are added
	// after it. Zero value (nil): the agent's own environment.
	Env []string
	// Logger receives one line per channel and per failure. Zero value:
	// nothing is logged.
	Logger *slog.Logger
}

// Serve runs the SSH server side of one connection over rw until the
// client disconnects or ctx is done, then closes rw. It returns nil when
// the client ended the connection or ctx was cancelled, and an error when
// the SSH handshake failed or Config.HostKey is missing. Channels still
// open when it returns are closed; their commands are left to the
// container's end.
func Serve(ctx context.Context, rw io.ReadWriteCloser, cfg Config) error {
	if cfg.HostKey == nil {
		rw.Close()
		return errors.New("agent: no host key")
	}
	if cfg.Shell == "" {
		cfg.Shell = "/bin/sh"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sc := &ssh.ServerConfig{NoClientAuth: true}
	sc.AddHostKey(cfg.HostKey)

	conn, chans, reqs, err := ssh.NewServerConn(streamConn{rw}, sc)
	if err != nil {
		rw.Close()
		return fmt.Errorf("agent: handshake: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go (&remoteForwards{conn: conn, log: cfg.Logger}).serve(reqs)

	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			go serveSession(ctx, nc, &cfg)
		case "direct-tcpip":
			go serveDirectTCPIP(ctx, nc, &cfg)
		case "direct-streamlocal@openssh.com":
			go serveDirectStreamlocal(ctx, nc, &cfg)
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type "+nc.ChannelType())
		}
	}
	conn.Close()
	return nil
}

// streamConn makes a stream a net.Conn for the SSH transport, which needs
// only Read, Write and Close.
type streamConn struct{ io.ReadWriteCloser }

type agentAddr struct{}

func (agentAddr) Network() string { return "agent" }
func (agentAddr) String() string  { return "stdio" }

func (streamConn) LocalAddr() net.Addr              { return agentAddr{} }
func (streamConn) RemoteAddr() net.Addr             { return agentAddr{} }
func (streamConn) SetDeadline(time.Time) error      { return nil }
func (streamConn) SetReadDeadline(time.Time) error  { return nil }
func (streamConn) SetWriteDeadline(time.Time) error { return nil }

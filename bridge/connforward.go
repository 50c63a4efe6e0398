package bridge

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/appname"
	"sshbridge/auth"
)

// Forwarding in connection mode: the bridge applies the key's policy
// (auth.Grant's CheckOpen, CheckListen, CheckOpenStreamlocal: permitopen,
// permitlisten, no-port-forwarding, restrict) and logs each forward with its
// target before it relays anything to the agent, which runs with the
// container's rights and enforces nothing. In per-session mode every form
// is refused (forwarding.go).

// forwardedTCPIPMsg is the "forwarded-tcpip" channel payload, RFC 4254
// section 7.2.
type forwardedTCPIPMsg struct {
	Address        string
	Port           uint32
	OriginatorIP   string
	OriginatorPort uint32
}

// appOf is the app a connection opens: the grant's, else the user name's.
func appOf(ctx ssh.Context, g *auth.Grant) string {
	if g != nil && g.App != "" {
		return g.App
	}
	app, _ := appname.ParseUser(ctx.User())
	return app
}

// directChannel serves direct-tcpip (ssh -L, -D, -W) and
// direct-streamlocal@openssh.com (ssh -L to a socket path) channels: inside
// the connection's one-off in connection mode, refused otherwise.
func (s *Server) directChannel(srv *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	st := stateOf(ctx)
	grant, _ := auth.GrantFrom(ctx)
	app := appOf(ctx, grant)
	if st == nil || !s.connectionMode(st, grant, app, "forward", "") {
		s.refuseChannel(srv, conn, newChan, ctx)
		return
	}
	log := connLogger(ctx, s.log)
	kind := newChan.ChannelType()
	var target string
	var err error
	switch kind {
	case "direct-tcpip":
		var msg directTCPIPMsg
		if gossh.Unmarshal(newChan.ExtraData(), &msg) != nil {
			newChan.Reject(gossh.ConnectionFailed, "malformed direct-tcpip request")
			return
		}
		target = hostPort(msg.Host, msg.Port)
		err = grant.CheckOpen(msg.Host, msg.Port)
	default:
		var msg directStreamlocalMsg
		if gossh.Unmarshal(newChan.ExtraData(), &msg) != nil {
			newChan.Reject(gossh.ConnectionFailed, "malformed direct-streamlocal request")
			return
		}
		target = msg.SocketPath
		err = grant.CheckOpenStreamlocal(msg.SocketPath)
	}
	if s.deps.Agent != nil && s.deps.Agent.ForwardingRefusal != "" && err == nil {
		err = errors.New(s.deps.Agent.ForwardingRefusal)
	}
	if err != nil {
		logForward(st, log, true, kind, target, "reason", err.Error())
		newChan.Reject(gossh.Prohibited, err.Error())
		return
	}
	ac, err := s.agentFor(s.forwardingSession(ctx))
	if err != nil {
		log.Warn("forward failed: no one-off", "type", kind, "target", cut(target, logNameBytes), "err", err)
		newChan.Reject(gossh.ConnectionFailed, classify(app, err).message)
		return
	}
	ach, areqs, err := ac.conn.OpenChannel(kind, newChan.ExtraData())
	if err != nil {
		reason, msg := gossh.ConnectionFailed, "the one-off could not open the forward"
		if oe, ok := err.(*gossh.OpenChannelError); ok {
			reason, msg = oe.Reason, oe.Message
		}
		log.Info("forward failed in the one-off", "type", kind, "target", cut(target, logNameBytes), "reason", msg)
		newChan.Reject(reason, msg)
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		ach.Close()
		return
	}
	logForward(st, log, false, kind, target)
	go gossh.DiscardRequests(areqs)
	go gossh.DiscardRequests(reqs)
	pipeChannels(ch, ach)
}

// pipeChannels relays two channels both ways, passing each side's EOF on,
// until both directions ended; then closes both.
func pipeChannels(a, b gossh.Channel) {
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src gossh.Channel) {
		defer wg.Done()
		io.CopyBuffer(dst, src, make([]byte, 32<<10))
		dst.CloseWrite()
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// tcpipForward serves tcpip-forward and cancel-tcpip-forward (ssh -R, RFC
// 4254 section 7.1): a listener inside the connection's one-off, bound as
// auth.Grant.CheckListen says, in connection mode; refused otherwise.
func (s *Server) tcpipForward(ctx ssh.Context, srv *ssh.Server, req *gossh.Request) (bool, []byte) {
	st := stateOf(ctx)
	grant, _ := auth.GrantFrom(ctx)
	app := appOf(ctx, grant)
	if st == nil || !s.connectionMode(st, grant, app, "forward", "") {
		return s.refuseGlobal(ctx, srv, req)
	}
	log := connLogger(ctx, s.log)
	var msg tcpipForwardMsg
	if gossh.Unmarshal(req.Payload, &msg) != nil {
		return false, nil
	}
	target := hostPort(msg.Address, msg.Port)
	bind, err := grant.CheckListen(msg.Address, msg.Port)
	if s.deps.Agent != nil && s.deps.Agent.ForwardingRefusal != "" && err == nil {
		err = errors.New(s.deps.Agent.ForwardingRefusal)
	}
	if err != nil {
		logForward(st, log, true, req.Type, target, "reason", err.Error())
		return false, nil
	}
	ac, err := s.agentFor(s.forwardingSession(ctx))
	if err != nil {
		log.Warn("forward failed: no one-off", "type", req.Type, "target", cut(target, logNameBytes), "err", err)
		return false, nil
	}
	if req.Type == "cancel-tcpip-forward" {
		ok, _, _ := ac.conn.SendRequest(req.Type, true, gossh.Marshal(&tcpipForwardMsg{bind, msg.Port}))
		ac.mu.Lock()
		delete(ac.remote, tcpipForwardMsg{bind, msg.Port})
		ac.mu.Unlock()
		return ok, nil
	}
	ok, payload, err := ac.conn.SendRequest(req.Type, true, gossh.Marshal(&tcpipForwardMsg{bind, msg.Port}))
	if err != nil || !ok {
		log.Info("forward failed in the one-off", "type", req.Type, "target", cut(target, logNameBytes), "err", err)
		return false, nil
	}
	port := msg.Port
	if port == 0 && len(payload) >= 4 {
		port = binary.BigEndian.Uint32(payload)
	}
	ac.mu.Lock()
	ac.remote[tcpipForwardMsg{bind, port}] = tcpipForwardMsg{msg.Address, port}
	ac.mu.Unlock()
	logForward(st, log, false, req.Type, target, "listen", hostPort(bind, port))
	return true, payload
}

// serveChannels takes the channels the agent opens: forwarded-tcpip for a
// listener of the owner's, relayed to the owner with the address the
// client asked for; anything else is refused.
func (ac *agentConn) serveChannels(chans <-chan gossh.NewChannel) {
	for nc := range chans {
		if nc.ChannelType() != "forwarded-tcpip" {
			nc.Reject(gossh.UnknownChannelType, "not served")
			continue
		}
		var msg forwardedTCPIPMsg
		if gossh.Unmarshal(nc.ExtraData(), &msg) != nil {
			nc.Reject(gossh.ConnectionFailed, "malformed forwarded-tcpip")
			continue
		}
		ac.mu.Lock()
		asked, ok := ac.remote[tcpipForwardMsg{msg.Address, msg.Port}]
		owner := ac.owner
		ac.mu.Unlock()
		if !ok || owner == nil {
			nc.Reject(gossh.Prohibited, "no such forward")
			continue
		}
		msg.Address, msg.Port = asked.Address, asked.Port
		go func() {
			cch, creqs, err := owner.OpenChannel("forwarded-tcpip", gossh.Marshal(&msg))
			if err != nil {
				nc.Reject(gossh.ConnectionFailed, "the client refused the forwarded connection")
				return
			}
			ach, areqs, err := nc.Accept()
			if err != nil {
				cch.Close()
				return
			}
			go gossh.DiscardRequests(creqs)
			go gossh.DiscardRequests(areqs)
			pipeChannels(cch, ach)
		}()
	}
}

// dropOwner detaches the agent from the user's connection that ended: its
// listeners inside the one-off are cancelled, as sshd closes a
// connection's remote forwards.
func (ac *agentConn) dropOwner() {
	ac.mu.Lock()
	remote := ac.remote
	ac.remote = map[tcpipForwardMsg]tcpipForwardMsg{}
	ac.owner = nil
	ac.mu.Unlock()
	for bound := range remote {
		ac.conn.SendRequest("cancel-tcpip-forward", false, gossh.Marshal(&bound))
	}
}

package agent

import (
	"log/slog"
	"net"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

// tcpipForward is the "tcpip-forward" and "cancel-tcpip-forward" global
// request payload, RFC 4254 section 7.1.
type tcpipForward struct {
	Addr string
	Port uint32
}

// forwardedTCPIP is the "forwarded-tcpip" channel-open payload, RFC 4254
// section 7.2.
type forwardedTCPIP struct {
	Addr     string
	Port     uint32
	OrigAddr string
	OrigPort uint32
}

// remoteForwards serves a connection's global requests: "tcpip-forward"
// listens inside the container and opens a "forwarded-tcpip" channel to
// the client for each connection accepted; "cancel-tcpip-forward" stops
// listening. Other global requests are refused.
type remoteForwards struct {
	conn ssh.Conn
	log  *slog.Logger

	mu        sync.Mutex
	listeners map[tcpipForward]net.Listener // by address and bound port
}

func (r *remoteForwards) serve(reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "tcpip-forward":
			r.listen(req)
		case "cancel-tcpip-forward":
			var p tcpipForward
			ok := ssh.Unmarshal(req.Payload, &p) == nil && r.cancel(p)
			req.Reply(ok, nil)
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	r.closeAll()
}

// listen answers "tcpip-forward": on success with the bound port when the
// client asked for port 0 (section 7.1).
func (r *remoteForwards) listen(req *ssh.Request) {
	var p tcpipForward
	if err := ssh.Unmarshal(req.Payload, &p); err != nil {
		req.Reply(false, nil)
		return
	}
	addr := net.JoinHostPort(p.Addr, strconv.FormatUint(uint64(p.Port), 10))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.log.Info("tcpip-forward refused", "target", addr, "err", err)
		req.Reply(false, nil)
		return
	}
	bound := tcpipForward{p.Addr, uint32(ln.Addr().(*net.TCPAddr).Port)}
	r.mu.Lock()
	if r.listeners == nil {
		r.listeners = map[tcpipForward]net.Listener{}
	}
	r.listeners[bound] = ln
	r.mu.Unlock()
	var reply []byte
	if p.Port == 0 {
		reply = ssh.Marshal(struct{ Port uint32 }{bound.Port})
	}
	req.Reply(true, reply)
	r.log.Info("tcpip-forward", "target", ln.Addr().String())
	go r.accept(ln, bound)
}

func (r *remoteForwards) accept(ln net.Listener, bound tcpipForward) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			orig := c.RemoteAddr().(*net.TCPAddr)
			ch, reqs, err := r.conn.OpenChannel("forwarded-tcpip", ssh.Marshal(forwardedTCPIP{
				Addr: bound.Addr, Port: bound.Port,
				OrigAddr: orig.IP.String(), OrigPort: uint32(orig.Port),
			}))
			if err != nil {
				c.Close()
				return
			}
			go ssh.DiscardRequests(reqs)
			relay(ch, c)
		}()
	}
}

// cancel stops the listener of p and says whether there was one.
func (r *remoteForwards) cancel(p tcpipForward) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ln, ok := r.listeners[p]
	if ok {
		ln.Close()
		delete(r.listeners, p)
	}
	return ok
}

func (r *remoteForwards) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, ln := range r.listeners {
		ln.Close()
		delete(r.listeners, p)
	}
}

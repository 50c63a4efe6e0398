package bridge

import (
	"net"
	"sync"
	"time"
)

// xcryptoBufSize is the size of the bufio.Writer that x/crypto's transport
// writes packets through.
const xcryptoBufSize = 4096

// coalescingConn turns the three writes in which x/crypto sends one large
// packet under a stream cipher (AES-CTR with an encrypt-then-MAC MAC, what
// OpenSSH's client picks here) into one writev. x/crypto writes the packet
// through a 4 KiB bufio.Writer: the first 4 KiB go when the buffer fills,
// the rest of the payload goes straight to the connection, and the padding
// and MAC go at the final flush. Each write is a syscall, and syscalls are
// what bulk transfers spend most of their time on.
//
// A write of exactly 4 KiB is held, and so is a large write right after
// it; the next write sends all of them at once. Packets of AEAD ciphers are
// single writes and pass straight through, as do small packets, so
// interactive traffic is never held. Should a held write be the last for a
// while (a packet that happens to end on the 4 KiB boundary), a timer sends
// it after heldFor.
type coalescingConn struct {
	net.Conn
	// out is where writes go: Conn, or the socket under a PROXY protocol
	// connection whose header is read, so that net.Buffers keeps its writev.
	out net.Conn

	mu    sync.Mutex
	first [xcryptoBufSize]byte
	rest  []byte
	held  int // 0: nothing; 1: first; 2: first and rest
	timer *time.Timer
	err   error
}

const heldFor = time.Millisecond

// newCoalescingConn wraps c. A c with a Socket method (a
// proxyprotocol.Conn) must have had its header read: writes then go to
// the socket.
func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, out: c}
	if s, ok := c.(interface{ Socket() net.Conn }); ok {
		cc.out = s.Socket()
	}
	cc.timer = time.AfterFunc(time.Hour, cc.flushHeld)
	cc.timer.Stop()
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	switch {
	case c.held == 0 && len(p) == xcryptoBufSize:
		copy(c.first[:], p)
		c.held = 1
		c.timer.Reset(heldFor)
		return len(p), nil
	case c.held == 1 && len(p) > xcryptoBufSize:
		c.rest = append(c.rest[:0], p...)
		c.held = 2
		c.timer.Reset(heldFor)
		return len(p), nil
	case c.held == 0:
		return c.out.Write(p)
	}
	c.timer.Stop()
	bufs := c.heldBuffers()
	bufs = append(bufs, p)
	c.held = 0
	if _, err := bufs.WriteTo(c.out); err != nil {
		c.err = err
		return 0, err
	}
	return len(p), nil
}

func (c *coalescingConn) heldBuffers() net.Buffers {
	switch c.held {
	case 1:
		return net.Buffers{c.first[:]}
	case 2:
		return net.Buffers{c.first[:], c.rest}
	}
	return nil
}

// flushHeld sends what was held when no write followed in time.
func (c *coalescingConn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 || c.err != nil {
		return
	}
	bufs := c.heldBuffers()
	c.held = 0
	if _, err := bufs.WriteTo(c.out); err != nil {
		c.err = err
	}
}

// Close sends what is held, then closes.
func (c *coalescingConn) Close() error {
	c.timer.Stop()
	c.flushHeld()
	return c.Conn.Close()
}

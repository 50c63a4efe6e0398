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
//
// What is held is copied into a buffer taken from heldBuffers for the time
// it is held, so that a connection holds no buffer between packets: an idle
// connection costs none (see BENCHMARKS.md, "Idle connections").
type coalescingConn struct {
	net.Conn
	// out is where writes go: Conn, or the socket under a PROXY protocol
	// connection whose header is read, so that net.Buffers keeps its writev.
	out net.Conn

	// end, when set, ends the connection's context: at Close, and at a
	// network error reading or writing (a client gone), so that its
	// sessions learn of it at once.
	end func()

	mu    sync.Mutex
	buf   *[]byte     // the held bytes, from heldBuffers; nil when none are held
	held  int         // 0: nothing; 1: the 4 KiB write; 2: and the large write after it
	timer *time.Timer // sends what is held after heldFor; made at the first write held
	err   error
}

const heldFor = time.Millisecond

// heldBuffers are the buffers of held writes, shared by all connections. A
// buffer grows to the size of the largest packet it held (32 KiB and a
// little for channel data at OpenSSH's packet size).
var heldBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, xcryptoBufSize)
	return &b
}}

// newCoalescingConn wraps c. A c with a Socket method (a
// proxyprotocol.Conn) must have had its header read: writes then go to
// the socket.
func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, out: c}
	if s, ok := c.(interface{ Socket() net.Conn }); ok {
		cc.out = s.Socket()
	}
	return cc
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.failed(err)
	return n, err
}

// failed ends the connection's context at a network error.
func (c *coalescingConn) failed(err error) {
	if _, ok := err.(net.Error); ok && c.end != nil {
		c.end()
	}
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	n, err := c.write(p)
	c.failed(err)
	return n, err
}

func (c *coalescingConn) write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	switch {
	case c.held == 0 && len(p) == xcryptoBufSize:
		c.hold(p)
		return len(p), nil
	case c.held == 1 && len(p) > xcryptoBufSize:
		c.hold(p)
		return len(p), nil
	case c.held == 0:
		return c.out.Write(p)
	}
	c.timer.Stop()
	if err := c.sendHeld(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hold copies p after what is held and arms the timer. c.mu is held.
func (c *coalescingConn) hold(p []byte) {
	if c.buf == nil {
		c.buf = heldBuffers.Get().(*[]byte)
		*c.buf = (*c.buf)[:0]
	}
	*c.buf = append(*c.buf, p...)
	c.held++
	if c.timer == nil {
		c.timer = time.AfterFunc(heldFor, c.flushHeld)
	} else {
		c.timer.Reset(heldFor)
	}
}

// sendHeld sends what is held, then tail (which may be nil), in one writev,
// and gives the buffer back. c.mu is held.
func (c *coalescingConn) sendHeld(tail []byte) error {
	bufs := net.Buffers{*c.buf}
	if tail != nil {
		bufs = append(bufs, tail)
	}
	_, err := bufs.WriteTo(c.out)
	heldBuffers.Put(c.buf)
	c.buf, c.held = nil, 0
	if err != nil {
		c.err = err
	}
	return err
}

// flushHeld sends what was held when no write followed in time.
func (c *coalescingConn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 || c.err != nil {
		return
	}
	c.sendHeld(nil)
}

// Close sends what is held, then closes.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.held != 0 && c.err == nil {
		c.sendHeld(nil)
	}
	c.mu.Unlock()
	err := c.Conn.Close()
	if c.end != nil {
		c.end()
	}
	return err
}

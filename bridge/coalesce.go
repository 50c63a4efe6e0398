package bridge

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// xcryptoBufSize is the size of the bufio.Writer that x/crypto's transport
// writes packets through.
const xcryptoBufSize = 4096

// coalescingConn cuts the syscalls of a bulk transfer, which is what the
// bridge spends most of a transfer's time on besides the ciphers, in three
// ways.
//
// A large packet under a stream cipher (AES-CTR with an encrypt-then-MAC
// MAC, what a client without AES-GCM gets here) leaves in one writev, not
// three.
// x/crypto writes such a packet through a 4 KiB bufio.Writer: the first
// 4 KiB go when the buffer fills, the rest of the payload goes straight to
// the connection, and the padding and MAC go at the final flush. A write of
// exactly 4 KiB is held, and so is a large write right after it; the write
// that ends the packet sends all of them at once. Packets of AEAD ciphers
// are single writes.
//
// Small packets written while the connection's reader is busy with what it
// read from a client sending in bulk (an SFTP status or a window adjust for
// each packet of an upload) are held until the reader is about to read
// again, then leave together (sent by the timer's goroutine, so that the
// reader never blocks on a write): one syscall for several packets, as
// OpenSSH's event loop writes what it produced in one go. A packet written
// while the reader waits for the client leaves at once, and nothing is held
// while the client sends little (a handshake, keystrokes), so interactive
// traffic is never held; nor is a download, whose reader waits for the
// client nearly all the time. At most maxHeld bytes are held, and a timer
// sends what is held after heldFor should the reader not come back to read
// in time.
//
// While the bridge serves an SFTP session on the connection itself
// (HoldWhileBulk), packets are held while the client sends in bulk even
// when the reader waits, and the reader's next read does not send them:
// they leave after heldFor, or at Flush, which the SFTP server calls after
// an answer its client waits for (sftp.inflight). With AES-GCM the reader
// waits for the client nearly all the time, so otherwise each SFTP status
// of an upload would leave in a write of its own; held, the answers and
// window adjusts come up to a millisecond later, which a client's pipeline
// of requests (OpenSSH's sftp keeps 64 in flight) absorbs, and fewer of
// its requests wait in the bridge's memory, in x/crypto's channel buffer
// (BENCHMARKS.md, "sftp put: the cipher"). A client with only a few
// requests in flight pays for the hold (README, Uploads).
//
// Reads on a TCP socket, once one has filled what it read into (a bulk
// transfer), go through a buffer of readBufSize taken from readBuffers, so
// that a read syscall takes several packets of an upload at once rather
// than a 4 KiB piece and then the rest of one packet. The buffer is taken
// only once data is there (a non-blocking read on the raw socket) and
// given back as soon as it is drained: a connection waiting for its client
// holds none. Small reads (a handshake, keystrokes) go straight to the
// socket and take no buffer at all.
//
// Held writes and read-ahead alike live in buffers shared by all
// connections, so that an idle connection costs none (see BENCHMARKS.md,
// "Idle connections").
type coalescingConn struct {
	net.Conn
	// out is where writes go: Conn, or the socket under a PROXY protocol
	// connection whose header is read, so that net.Buffers keeps its writev.
	out net.Conn
	// raw is the TCP socket's raw connection, for reads through a shared
	// buffer; nil otherwise (reads then go straight to Conn).
	raw syscall.RawConn

	// end, when set, ends the connection's context: at Close, and at a
	// network error reading or writing (a client gone), so that its
	// sessions learn of it at once.
	end func()

	mu      sync.Mutex
	buf     *[]byte      // the held bytes, from heldBuffers; nil when none are held
	held    int          // 0: nothing of a large packet; 1: its first 4 KiB; 2: and the large write after it
	reading atomic.Bool  // the reader waits for the client: a packet written now leaves at once, unless sftp > 0
	sftp    atomic.Int32 // SFTP sessions the bridge serves on the connection (HoldWhileBulk)
	timer   *time.Timer  // sends what is held after heldFor; made at the first write held
	heldFor time.Duration
	err     error

	// Read side: one reader at a time (x/crypto's read loop).
	rbuf *[]byte // bytes read and not yet returned, from readBuffers; nil when none
	roff int     // what of *rbuf is returned
	// bulk: the last read filled what it read into (or, reading ahead,
	// took more than 4 KiB): the client is sending in bulk. Reads then go
	// ahead, and small writes are held while the reader is busy; at other
	// times (a handshake, keystrokes) nothing is held for the reader.
	bulk atomic.Bool
}

const (
	heldFor = time.Millisecond
	// maxHeld bounds the bytes held.
	maxHeld = 64 << 10
	// readBufSize is the size of a read-ahead buffer: four packets of
	// OpenSSH's 32 KiB. 64, 128 and 256 KiB gave the same upload speed
	// within the machine's noise.
	readBufSize = 128 << 10
)

// heldBuffers are the buffers of held writes, shared by all connections. A
// buffer grows to the size of the largest run of writes it held (32 KiB and
// a little for channel data at OpenSSH's packet size).
var heldBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, xcryptoBufSize)
	return &b
}}

// readBuffers are the read-ahead buffers, shared by all connections.
var readBuffers = sync.Pool{New: func() any {
	b := make([]byte, readBufSize)
	return &b
}}

// newCoalescingConn wraps c. A c with a Socket method (a
// proxyprotocol.Conn) must have had its header read: writes then go to
// the socket.
func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, out: c, heldFor: heldFor}
	if s, ok := c.(interface{ Socket() net.Conn }); ok {
		cc.out = s.Socket()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		cc.raw, _ = tc.SyscallConn()
	}
	return cc
}

// Read returns what the read-ahead buffer holds, or else sends what is
// held and reads: a socket's data through a buffer from readBuffers, taken
// only once data is there.
func (c *coalescingConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.rbuf != nil {
		return c.fromBuffer(p), nil
	}
	direct := c.raw == nil || len(p) >= readBufSize || !c.bulk.Load()
	// A direct read may wait for the client: it counts as waiting from
	// the start. A read ahead checks first and counts as waiting only
	// once the socket turns out empty (readAhead).
	c.beforeRead(direct)
	defer c.reading.Store(false)
	if direct {
		n, err := c.Conn.Read(p)
		c.bulk.Store(n == len(p)) // filled: more is likely waiting
		c.failed(err)
		return n, err
	}
	n, err := c.readAhead()
	c.bulk.Store(n > xcryptoBufSize)
	if err != nil {
		c.failed(err)
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return c.fromBuffer(p), nil
}

// beforeRead has what is held sent, before a read, and sets whether the
// reader now counts as waiting for the client. The reader itself never
// writes, nor waits for a writer: a write blocks while the client reads
// nothing (a client that reads only once its own writes are through), and
// the reader must go on reading then, or both sides wait for each other.
// What is held is sent by the timer's goroutine at once; when a write is
// under way (c.mu is taken), by that goroutine within heldFor.
func (c *coalescingConn) beforeRead(waiting bool) {
	c.reading.Store(waiting)
	if c.sftp.Load() > 0 {
		return // held for heldFor, or until Flush
	}
	if !c.mu.TryLock() {
		return
	}
	if c.buf != nil && c.err == nil {
		c.timer.Reset(0)
	}
	c.mu.Unlock()
}

// readAhead reads what the socket has into a buffer from readBuffers,
// waiting for data first without one. It returns the bytes read, 0 at the
// end of the stream; the buffer is c.rbuf when it holds any.
func (c *coalescingConn) readAhead() (int, error) {
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		b := readBuffers.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			readBuffers.Put(b)
			c.beforeRead(true)
			return false // wait until the socket is readable
		}
		if n > 0 {
			*b = (*b)[:n]
			c.rbuf, c.roff = b, 0
		} else {
			readBuffers.Put(b)
			n = 0
		}
		return true
	})
	if err == nil && rerr != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	}
	return n, err
}

// fromBuffer copies from the read-ahead buffer into p and gives the buffer
// back once it is drained.
func (c *coalescingConn) fromBuffer(p []byte) int {
	n := copy(p, (*c.rbuf)[c.roff:])
	c.roff += n
	if c.roff == len(*c.rbuf) {
		*c.rbuf = (*c.rbuf)[:cap(*c.rbuf)]
		readBuffers.Put(c.rbuf)
		c.rbuf = nil
	}
	return n
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
		c.held = 1
		return len(p), nil
	case c.held == 1 && len(p) > xcryptoBufSize:
		c.hold(p)
		c.held = 2
		return len(p), nil
	}
	// p ends a packet, or is one.
	c.held = 0
	if c.bulk.Load() && (!c.reading.Load() || c.sftp.Load() > 0) && c.heldBytes()+len(p) <= maxHeld {
		c.hold(p)
		return len(p), nil
	}
	if c.buf == nil {
		return c.out.Write(p)
	}
	c.timer.Stop()
	if err := c.sendHeld(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *coalescingConn) heldBytes() int {
	if c.buf == nil {
		return 0
	}
	return len(*c.buf)
}

// hold copies p after what is held; the first byte held arms the timer,
// so that nothing is held longer than heldFor. c.mu is held.
func (c *coalescingConn) hold(p []byte) {
	if c.buf == nil {
		c.buf = heldBuffers.Get().(*[]byte)
		*c.buf = (*c.buf)[:0]
		if c.timer == nil {
			c.timer = time.AfterFunc(c.heldFor, c.flushHeld)
		} else {
			c.timer.Reset(c.heldFor)
		}
	}
	*c.buf = append(*c.buf, p...)
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
	c.buf = nil
	if err != nil {
		c.err = err
	}
	return err
}

// HoldWhileBulk holds packets while the client sends in bulk, whatever the
// reader does, while an SFTP session the bridge serves runs (on), until it
// ends (off, which sends what is held). Each on is matched by one off.
func (c *coalescingConn) HoldWhileBulk(on bool) {
	if on {
		c.sftp.Add(1)
		return
	}
	c.sftp.Add(-1)
	c.flushHeld()
}

// Flush sends what is held now: the SFTP server's client waits for the
// answer just written.
func (c *coalescingConn) Flush() { c.flushHeld() }

// flushHeld sends what was held when no write followed in time; a network
// error ends the connection's context, as one in Write does.
func (c *coalescingConn) flushHeld() {
	c.mu.Lock()
	if c.buf == nil || c.err != nil {
		c.mu.Unlock()
		return
	}
	err := c.sendHeld(nil)
	c.mu.Unlock()
	c.failed(err)
}

// closeWriteGrace is how long Close lets a write under way, and what is
// held, take to be accepted by the socket before it cuts them off.
const closeWriteGrace = time.Second

// Close sends what is held, then closes. A write under way, or what is
// held, that the socket does not accept within closeWriteGrace (a client
// that reads nothing, whose socket buffers are full) fails, so that Close
// waits on the client at most closeWriteGrace: the keepalive's and the
// server's shutdown's Close end such a connection too.
func (c *coalescingConn) Close() error {
	c.out.SetWriteDeadline(time.Now().Add(closeWriteGrace))
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.buf != nil && c.err == nil {
		c.sendHeld(nil)
	}
	c.mu.Unlock()
	err := c.Conn.Close()
	if c.end != nil {
		c.end()
	}
	return err
}

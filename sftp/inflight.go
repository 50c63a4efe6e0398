package sftp

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// waitedAfter: a request whose first byte the server had only this long
// after asking for it was not in the SSH channel yet; one that was comes
// within a microsecond or two.
const waitedAfter = 5 * time.Microsecond

// requestsInFlight is how many requests a session's server holds at once
// (read, not yet answered). pkg/sftp gives each one a packet buffer of its
// largest packet size, 256 KiB, whatever the request's size (a read gets a
// second one for its data), so this bounds a session's buffers: OpenSSH's
// sftp keeps 64 requests in flight (its -R), which cost 16 MiB. The requests
// the server does not hold yet wait in the SSH channel, within the window
// the bridge grants (2 MiB in x/crypto), so the client's pipeline stays
// full. Two let one request be served while the next is read; with 2, 8 and
// no bound, same-run 1 GiB uploads showed no difference in speed beyond the
// machine's noise, and 1 MiB of RSS less per 2 requests fewer
// (BENCHMARKS.md, "sftp put": memory).
const requestsInFlight = 2

// inflight bounds the requests pkg/sftp's request server holds: it hands
// the server the first byte of a request only while fewer than max
// requests are unanswered, and counts an answer once its last byte is
// written. Each SFTP request gets exactly one answer
// (draft-ietf-secsh-filexfer-02 section 7; pkg/sftp answers an unknown one
// with SSH_FX_OP_UNSUPPORTED), so the count cannot drift. A failed write
// (the channel is gone) or Close ends it: a read waiting for a slot then
// returns that error.
//
// It also tells when the client waits for an answer, for the connection
// (a channel with a Flush method: the bridge's, which holds packets for up
// to a millisecond while the client sends in bulk). An answer written when
// no other request is under way is one the client waits for when the
// server had to wait for the request it answers (it came only after the
// answers before it had left: pkg/sftp's client without concurrent writes,
// Paramiko without pipelining), or when the server has been waiting for
// the next request for waitedAfter already (the last write of a file,
// whose CLOSE the client sends only once every write is answered): Flush
// sends it at once. A client with requests waiting in the channel
// (OpenSSH's sftp keeps 64 in flight) gets its answers and window adjusts
// within the millisecond, which its pipeline absorbs.
type inflight struct {
	rw    io.ReadWriteCloser
	slots chan struct{} // one element per unanswered request

	end     chan struct{} // closed by fail
	endOnce sync.Once
	err     error // set before end is closed

	// started counts the requests whose first byte the server has read;
	// waited is the count at the latest one it had to wait for
	// (waitedAfter); asking is when the server began to ask for the next
	// request's first byte (UnixNano), 0 when it is not asking.
	started, waited, asking atomic.Int64
	flusher                 interface{ Flush() } // rw's, if it has one
	waitedAfter             time.Duration

	// Read side: the server reads from one goroutine.
	in   framing
	held bool // the request being read has its slot

	// Write side: pkg/sftp writes an answer under its own lock; wmu keeps
	// the framing right whoever writes.
	wmu      sync.Mutex
	out      framing
	answered int64 // answers whose last byte was written
}

func newInflight(rw io.ReadWriteCloser, max int) *inflight {
	c := &inflight{rw: rw, slots: make(chan struct{}, max), end: make(chan struct{}), waitedAfter: waitedAfter}
	c.flusher, _ = rw.(interface{ Flush() })
	return c
}

// Read reads at most up to the end of the current packet's length or body,
// so that the next request's first byte comes only once it has a slot.
func (c *inflight) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !c.held {
		select {
		case c.slots <- struct{}{}:
			c.held = true
		case <-c.end:
			return 0, c.err
		}
	}
	first := c.in.hn == 0 && c.in.left == 0
	var asked time.Time
	if first {
		asked = time.Now()
		c.asking.Store(asked.UnixNano())
	}
	n, err := c.rw.Read(p[:c.in.want(len(p))])
	if first {
		c.asking.Store(0)
		if n > 0 {
			k := c.started.Add(1)
			if time.Since(asked) >= c.waitedAfter {
				c.waited.Store(k)
			}
		}
	}
	if c.in.consume(p[:n]) > 0 {
		// A read never goes past one packet, so at most one ends here.
		c.held = false
	}
	return n, err
}

// Write writes an answer or part of one; each answer completed gives its
// request's slot back, and one the client waits for is flushed (see
// inflight).
func (c *inflight) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.rw.Write(p)
	if err != nil {
		c.fail(err)
		return n, err
	}
	ended := c.out.consume(p[:n])
	for range ended {
		select {
		case <-c.slots:
		default: // an answer with no request: nothing to give back
		}
	}
	c.answered += int64(ended)
	if ended > 0 && c.flusher != nil && c.started.Load() == c.answered && c.waitsFor() {
		c.flusher.Flush()
	}
	return n, nil
}

// waitsFor says whether the client waits for the answer just written, no
// other request being under way (see inflight).
func (c *inflight) waitsFor() bool {
	if c.waited.Load() == c.answered {
		return true
	}
	a := c.asking.Load()
	return a != 0 && time.Now().UnixNano()-a >= c.waitedAfter.Nanoseconds()
}

// Close closes the channel and ends a read waiting for a slot with
// net.ErrClosed, as a read of a closed connection ends.
func (c *inflight) Close() error {
	c.fail(net.ErrClosed)
	return c.rw.Close()
}

func (c *inflight) fail(err error) {
	c.endOnce.Do(func() {
		c.err = err
		close(c.end)
	})
}

// framing follows SFTP packets, a uint32 length then that many bytes
// (draft-ietf-secsh-filexfer-02 section 3), across reads or writes.
type framing struct {
	hdr  [4]byte
	hn   int    // bytes of the length seen
	left uint32 // bytes of the body still to come, once the length is seen
}

// want is how many of n bytes can be taken without passing the end of the
// length or of the body.
func (f *framing) want(n int) int {
	if f.hn < len(f.hdr) {
		return min(n, len(f.hdr)-f.hn)
	}
	return int(min(uint64(n), uint64(f.left)))
}

// consume follows b and returns how many packets it ended.
func (f *framing) consume(b []byte) (ended int) {
	for len(b) > 0 {
		if f.hn < len(f.hdr) {
			k := copy(f.hdr[f.hn:], b)
			f.hn += k
			b = b[k:]
			if f.hn < len(f.hdr) {
				break
			}
			f.left = binary.BigEndian.Uint32(f.hdr[:])
		} else {
			k := uint32(min(uint64(len(b)), uint64(f.left)))
			f.left -= k
			b = b[k:]
		}
		if f.left == 0 {
			ended++
			f.hn = 0
		}
	}
	return ended
}

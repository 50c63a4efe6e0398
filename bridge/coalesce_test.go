package bridge

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingConn records each write to the connection as one syscall would.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recordingConn) Close() error { return nil }

func (r *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func (r *recordingConn) all() ([]byte, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Join(r.writes, nil), len(r.writes)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func TestCoalescingOrderAndFlush(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []int
	}{
		{"stream-cipher packet", []int{4096, 28000, 40}},
		{"two packets", []int{4096, 28000, 40, 4096, 30000, 52}},
		{"small packets", []int{100, 36, 4000}},
		{"AEAD packet", []int{32800}},
		{"ends on the boundary", []int{4096}},
		{"boundary then large", []int{4096, 9000}},
		{"boundary twice", []int{4096, 4096}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingConn{}
			c := newCoalescingConn(rec)
			var want []byte
			for i, n := range tc.writes {
				p := pattern(n, byte(i))
				want = append(want, p...)
				if got, err := c.Write(p); err != nil || got != n {
					t.Fatalf("write %d: %d, %v", i, got, err)
				}
				clear(p) // the caller reuses its buffer
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				got, _ := rec.all()
				if bytes.Equal(got, want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("sent %d bytes, want %d in order", len(got), len(want))
				}
				time.Sleep(time.Millisecond)
			}
			// Sent under c.mu: once it is free, the buffer is back.
			c.mu.Lock()
			held := c.buf != nil
			c.mu.Unlock()
			if held {
				t.Fatal("everything is sent, yet the connection keeps a held buffer")
			}
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		s, _ := ln.Accept()
		accepted <- s
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { conn.Close(); s.Close() })
	return s.(*net.TCPConn), conn.(*net.TCPConn)
}

// waitReading waits until c's reader is in a read.
func waitReading(t *testing.T, c *coalescingConn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c.reading.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader never started its read")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Over TCP, while the reader waits for the client, the three writes of a
// packet leave as one writev at the packet's last write.
func TestCoalescingOneSyscallPerPacket(t *testing.T) {
	server, client := tcpPair(t)
	c := newCoalescingConn(server)
	readDone := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readDone <- err
	}()
	waitReading(t, c)
	var want []byte
	for i, n := range []int{4096, 28000, 40} {
		p := pattern(n, byte(i))
		want = append(want, p...)
		c.Write(p)
	}
	c.mu.Lock()
	held, buf := c.held, c.buf
	c.mu.Unlock()
	if held != 0 {
		t.Fatal("the packet's tail should have sent everything held")
	}
	if buf != nil {
		t.Fatal("the held buffer should be given back once sent: an idle connection holds none")
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("received %v, want %d bytes in order", err, len(want))
	}
	client.Write([]byte{1})
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
}

// Small packets written while the reader is busy with what a client sending
// in bulk sent leave together, in one write, when it reads again; one
// written while it waits for the client, or after a client sent little,
// leaves at once.
func TestCoalescingHoldsWhileTheReaderIsBusy(t *testing.T) {
	server, client := tcpPair(t)
	rec := &recordingConn{Conn: server} // not a *net.TCPConn: reads go straight to it
	c := newCoalescingConn(rec)
	c.heldFor = time.Hour // what is held leaves at the read, not by the timer
	// A client sending little (a keystroke): the answer leaves at once.
	client.Write([]byte("k"))
	if n, err := c.Read(make([]byte, 100)); n != 1 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	echo := pattern(36, 8)
	c.Write(echo)
	if got, n := rec.all(); n != 1 || !bytes.Equal(got, echo) {
		t.Fatalf("%d writes after a keystroke, want the echo sent at once", n)
	}
	rec.mu.Lock()
	rec.writes = nil
	rec.mu.Unlock()
	// A client sending in bulk: a read fills what it reads into.
	client.Write([]byte("request"))
	if _, err := io.ReadFull(c, make([]byte, 7)); err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i, n := range []int{28, 52, 28} { // two SFTP statuses and a window adjust, say
		p := pattern(n, byte(i))
		want = append(want, p...)
		c.Write(p)
	}
	if _, n := rec.all(); n != 0 {
		t.Fatalf("%d writes sent while the reader is busy, want them held until it reads", n)
	}
	readDone := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, make([]byte, 4))
		readDone <- err
	}()
	waitReading(t, c)
	// Sent by the timer's goroutine, at once.
	deadline := time.Now().Add(5 * time.Second)
	got, n := rec.all()
	for n == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
		got, n = rec.all()
	}
	if n != 1 || !bytes.Equal(got, want) {
		t.Fatalf("sent %d bytes in %d writes at the read, want %d in one", len(got), n, len(want))
	}
	// The reader now waits for the client: a packet leaves at once.
	late := pattern(36, 9)
	c.Write(late)
	if got, n := rec.all(); n != 2 || !bytes.Equal(got, append(want, late...)) {
		t.Fatalf("a packet written while the reader waits: %d writes, want it sent at once", n)
	}
	want = append(want, late...)
	// While the bridge serves an SFTP session, packets wait even while the
	// reader waits, until Flush, or the session's end.
	c.HoldWhileBulk(true)
	a, b := pattern(28, 10), pattern(28, 11)
	c.Write(a)
	if _, n := rec.all(); n != 2 {
		t.Fatalf("serving SFTP, a packet written while the reader waits: %d writes, want it held", n)
	}
	c.Flush()
	if got, n := rec.all(); n != 3 || !bytes.Equal(got, append(want, a...)) {
		t.Fatalf("after Flush: %d writes, want the held packet sent", n)
	}
	c.Write(b)
	c.HoldWhileBulk(false)
	if got, n := rec.all(); n != 4 || !bytes.Equal(got, bytes.Join([][]byte{want, a, b}, nil)) {
		t.Fatalf("after the SFTP session: %d writes, want the held packet sent", n)
	}
	want = bytes.Join([][]byte{want, a, b}, nil)
	late = nil
	client.Write([]byte("next"))
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	// However busy the reader, no more than maxHeld bytes wait.
	big := pattern(maxHeld, 3)
	c.Write(big[:maxHeld/2])
	c.Write(big[maxHeld/2:])
	c.Write(big[:1])
	if got, _ := rec.all(); len(got) < len(want)+len(late)+maxHeld {
		t.Fatalf("%d bytes sent, want everything beyond maxHeld sent", len(got))
	}
}

// Reads on a TCP socket go through a shared buffer that returns the
// client's bytes in order across reads of any size, is given back once
// drained, and ends at the client's close with io.EOF.
func TestReadAheadKeepsOrderAndGivesTheBufferBack(t *testing.T) {
	server, client := tcpPair(t)
	c := newCoalescingConn(server)
	if c.raw == nil {
		t.Fatal("a TCP connection should read through the read-ahead buffer")
	}
	want := pattern(3*readBufSize+1234, 7)
	go func() {
		client.Write(want)
		client.Close()
	}()
	var got []byte
	sizes := []int{5, 4096, 28000, readBufSize, 1}
	aheadSeen := false
	for i := 0; ; i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := c.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		aheadSeen = aheadSeen || c.rbuf != nil
		if len(got) == len(want) && c.rbuf != nil {
			t.Fatal("everything is returned, yet the connection keeps its read-ahead buffer")
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d in order", len(got), len(want))
	}
	if !aheadSeen {
		t.Fatal("a bulk transfer never went through the read-ahead buffer")
	}
}

// A reset connection's read error is a net.Error, which ends the
// connection's context (failed).
func TestReadAheadErrorIsANetError(t *testing.T) {
	server, client := tcpPair(t)
	c := newCoalescingConn(server)
	ended := make(chan struct{})
	c.end = func() { close(ended) }
	client.SetLinger(0)
	client.Close() // sends a reset
	var err error
	for err == nil {
		_, err = c.Read(make([]byte, 10))
	}
	if _, ok := err.(net.Error); !ok {
		t.Fatalf("read after a reset: %T %v, want a net.Error", err, err)
	}
	<-ended
}

// writeUntilBlocked writes to c from a goroutine of its own until a write
// blocks, the client reading nothing, so that the socket's buffers fill
// and the write holds the connection's lock. The writes' first error
// comes on the channel returned.
func writeUntilBlocked(t *testing.T, c *coalescingConn) <-chan error {
	t.Helper()
	var written atomic.Int64
	failed := make(chan error, 1)
	go func() {
		big := make([]byte, 1<<20)
		for {
			n, err := c.Write(big)
			written.Add(int64(n))
			if err != nil {
				failed <- err
				return
			}
		}
	}()
	last, still := int64(-1), 0
	for deadline := time.Now().Add(10 * time.Second); still < 20; {
		if time.Now().After(deadline) {
			t.Fatal("the writes never blocked")
		}
		time.Sleep(5 * time.Millisecond)
		if w := written.Load(); w == last {
			still++
		} else {
			last, still = w, 0
		}
	}
	if c.mu.TryLock() {
		c.mu.Unlock()
		t.Fatal("the writes stopped, yet no write holds the lock")
	}
	return failed
}

// The reader goes on reading while a write is blocked on a client that
// reads nothing until its own writes are through: were the reader to wait
// for the writer, both sides would wait for each other.
func TestReaderGoesOnWhileAWriteIsBlocked(t *testing.T) {
	server, client := tcpPair(t)
	c := newCoalescingConn(server)
	writeUntilBlocked(t, c)
	client.Write([]byte("window adjust"))
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, make([]byte, 13))
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader waits for a blocked writer")
	}
	client.Close()
	server.Close()
}

// TestCloseCutsOffAWriteBlockedOnTheClient: a client that reads nothing
// holds a write, and with it the connection's lock; Close (the keepalive's,
// the shutdown's) still closes the connection, within closeWriteGrace, and
// the blocked write fails, ending the connection's context.
func TestCloseCutsOffAWriteBlockedOnTheClient(t *testing.T) {
	server, _ := tcpPair(t)
	c := newCoalescingConn(server)
	ended := make(chan struct{})
	var once sync.Once
	c.end = func() { once.Do(func() { close(ended) }) }
	failed := writeUntilBlocked(t, c)
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(closeWriteGrace + 5*time.Second):
		t.Fatal("Close waits for a write blocked on a client that reads nothing")
	}
	if d := time.Since(start); d < closeWriteGrace/2 {
		t.Errorf("Close cut the write off after %v, before its grace of %v", d, closeWriteGrace)
	}
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("the blocked write succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked write never returned")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection's context did not end")
	}
}

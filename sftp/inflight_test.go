package sftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair is a loopback TCP connection's two ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// readPackets reads packets from r as pkg/sftp does (the length, then the
// body, each with io.ReadFull) and sends each body on the channel, until a
// read fails; the failure is sent last.
func readPackets(r io.Reader) (<-chan []byte, <-chan error) {
	pkts, errc := make(chan []byte, 16), make(chan error, 1)
	go func() {
		for {
			var hdr [4]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				errc <- err
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(r, body); err != nil {
				errc <- err
				return
			}
			pkts <- body
		}
	}()
	return pkts, errc
}

func expectPacket(t *testing.T, pkts <-chan []byte, want []byte) {
	t.Helper()
	select {
	case got := <-pkts:
		if !bytes.Equal(got, want[4:]) {
			t.Fatalf("read packet %q, want %q", got, want[4:])
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("packet %q never read", want[4:])
	}
}

// held is how long a test waits to see that a read stays blocked.
const held = 200 * time.Millisecond

func expectNoPacket(t *testing.T, pkts <-chan []byte) {
	t.Helper()
	select {
	case got := <-pkts:
		t.Fatalf("packet %q read past the limit of requests in flight", got)
	case <-time.After(held):
	}
}

// The server gets a request only while fewer than the limit are
// unanswered; an answer counts once its last byte is written.
func TestInflightBoundsRequests(t *testing.T) {
	client, server := tcpPair(t)
	c := newInflight(server, 2)
	reqs := [][]byte{
		rawPacket(17, uint32(1), "a"), rawPacket(17, uint32(2), "bb"),
		rawPacket(17, uint32(3), "ccc"), rawPacket(17, uint32(4), "dddd"),
	}
	// All four in one write: the reads must still stop at each packet.
	if _, err := client.Write(bytes.Join(reqs, nil)); err != nil {
		t.Fatal(err)
	}
	pkts, errc := readPackets(c)
	expectPacket(t, pkts, reqs[0])
	expectPacket(t, pkts, reqs[1])
	expectNoPacket(t, pkts)

	// An answer in two writes, as pkg/sftp sends one (header, payload).
	answer := rawPacket(101, uint32(1), uint32(0), "", "")
	if _, err := c.Write(answer[:9]); err != nil {
		t.Fatal(err)
	}
	expectNoPacket(t, pkts)
	if _, err := c.Write(answer[9:]); err != nil {
		t.Fatal(err)
	}
	expectPacket(t, pkts, reqs[2])
	expectNoPacket(t, pkts)

	// Two answers in one write give back two slots.
	two := append(rawPacket(101, uint32(2), uint32(0), "", ""), rawPacket(101, uint32(3), uint32(0), "", "")...)
	if _, err := c.Write(two); err != nil {
		t.Fatal(err)
	}
	expectPacket(t, pkts, reqs[3])
	got := make([]byte, len(answer)+len(two))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, append(answer, two...)) {
		t.Fatalf("client read %q, %v", got, err)
	}

	// Close ends a read waiting for a slot: 2 unanswered (the 4th and the 5th).
	client.Write(rawPacket(17, uint32(5), "e"))
	expectPacket(t, pkts, rawPacket(17, uint32(5), "e"))
	client.Write(rawPacket(17, uint32(6), "f"))
	expectNoPacket(t, pkts)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read waiting for a slot outlived Close")
	}
}

// A failed write (the channel is gone) ends a read waiting for a slot with
// the write's error, or the server would wait for answers that cannot be
// sent.
func TestInflightWriteFailureEndsWaitingRead(t *testing.T) {
	client, server := tcpPair(t)
	c := newInflight(server, 1)
	client.Write(append(rawPacket(17, uint32(1), "a"), rawPacket(17, uint32(2), "b")...))
	pkts, errc := readPackets(c)
	expectPacket(t, pkts, rawPacket(17, uint32(1), "a"))
	expectNoPacket(t, pkts)
	server.Close() // the next write fails
	if _, err := c.Write(rawPacket(101, uint32(1), uint32(0), "", "")); err == nil {
		t.Fatal("write on a closed connection succeeded")
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after a failed write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read waiting for a slot outlived a failed write")
	}
	select {
	case got := <-pkts:
		t.Fatalf("packet %q read after the failure", got)
	default:
	}
}

// flushRW is a channel whose reads come from r, whose writes go nowhere,
// and which counts its Flush calls.
type flushRW struct {
	r       io.Reader
	flushes atomic.Int64
}

func (w *flushRW) Read(p []byte) (int, error)  { return w.r.Read(p) }
func (w *flushRW) Write(p []byte) (int, error) { return len(p), nil }
func (w *flushRW) Close() error                { return nil }
func (w *flushRW) Flush()                      { w.flushes.Add(1) }

// An answer is flushed when the client waits for it: no other request is
// under way and the server had to wait for the request it answers. The
// answers of a client with requests waiting in the channel are not.
func TestInflightFlushesWhatTheClientWaitsFor(t *testing.T) {
	req := func(id uint32) []byte { return rawPacket(6, id, "payload") }
	status := func(id uint32) []byte { return rawPacket(101, id, uint32(0), "", "") }
	in, feed := io.Pipe()
	rw := &flushRW{r: in}
	c := newInflight(rw, 2)
	// Waited for: more than 50 ms after the server asked. Requests fed
	// 200 ms late are; requests fed at once are not.
	c.waitedAfter = 50 * time.Millisecond
	late := func(b []byte) { time.AfterFunc(200*time.Millisecond, func() { feed.Write(b) }) }
	pkts, _ := readPackets(c)

	// A client that waits for each answer.
	for id := uint32(1); id < 4; id++ {
		late(req(id))
		expectPacket(t, pkts, req(id))
		c.Write(status(id))
		if got := rw.flushes.Load(); got != int64(id) {
			t.Fatalf("request %d waited for and answered: %d flushes, want %d", id, got, id)
		}
	}
	// A client with requests waiting: 4 and 5 come at once, then 6 once
	// its answers are through (OpenSSH's sftp keeps 64 in flight).
	go feed.Write(append(req(4), req(5)...))
	expectPacket(t, pkts, req(4))
	expectPacket(t, pkts, req(5))
	c.Write(status(4)) // 5 is under way
	c.Write(status(5)) // 5 was there at once
	if got := rw.flushes.Load(); got != 3 {
		t.Fatalf("answers to requests in flight: %d flushes, want none beyond the 3 before", got)
	}
	// An answer in two writes is flushed once, when it ends.
	late(req(6))
	expectPacket(t, pkts, req(6))
	answer := status(6)
	c.Write(answer[:9])
	c.Write(answer[9:])
	if got := rw.flushes.Load(); got != 4 {
		t.Fatalf("after the answer to a request waited for: %d flushes, want 4", got)
	}
	// A request waited for, but another under way when it is answered:
	// not flushed.
	late(req(7))
	expectPacket(t, pkts, req(7))
	go feed.Write(req(8))
	expectPacket(t, pkts, req(8))
	c.Write(status(7))
	if got := rw.flushes.Load(); got != 4 {
		t.Fatalf("answer to 7 with 8 under way: %d flushes, want 4", got)
	}
	// The last request of a burst (the last write of a file): not waited
	// for, but once the server has been asking for the next one for
	// waitedAfter, its answer is what the client waits for.
	time.Sleep(3 * c.waitedAfter)
	c.Write(status(8))
	if got := rw.flushes.Load(); got != 5 {
		t.Fatalf("answer to the last request of a burst, the server asking for more: %d flushes, want 5", got)
	}
}

func TestFraming(t *testing.T) {
	stream := bytes.Join([][]byte{
		rawPacket(1, uint32(3)),
		{0, 0, 0, 0}, // a zero length: a packet with no body
		rawPacket(6, uint32(7), string(make([]byte, 300))),
	}, nil)
	for _, step := range []int{1, 2, 3, 4, 5, 7, 64, len(stream)} {
		var f framing
		ended := 0
		for b := stream; len(b) > 0; {
			n := min(step, len(b))
			ended += f.consume(b[:n])
			b = b[n:]
		}
		if ended != 3 || f.hn != 0 || f.left != 0 {
			t.Errorf("in pieces of %d: %d packets, state %+v; want 3 at a boundary", step, ended, f)
		}
	}
}

// Reads limited by want end at most one packet each, and count the packets
// that a single consume of the same bytes counts.
func FuzzFraming(f *testing.F) {
	f.Add(rawPacket(1, uint32(3)), uint8(3))
	f.Add(append(rawPacket(6, uint32(7), "name"), 0, 0, 0, 0, 0, 0, 0, 1, 9), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		var whole framing
		want := whole.consume(stream)
		var f framing
		got := 0
		for b := stream; len(b) > 0; {
			n := f.want(max(1, int(step)))
			if n <= 0 {
				t.Fatalf("want %d with %d bytes left", n, len(b))
			}
			n = min(n, len(b))
			e := f.consume(b[:n])
			if e > 1 {
				t.Fatalf("one limited read ended %d packets", e)
			}
			got += e
			b = b[n:]
		}
		if got != want || f != whole {
			t.Fatalf("limited reads: %d packets, state %+v; one consume: %d, %+v", got, f, want, whole)
		}
	})
}

package bridge

import (
	"bytes"
	"io"
	"net"
	"sync"
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

// Over TCP the three writes of a packet leave as one writev.
func TestCoalescingOneSyscallPerPacket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(s)
		got <- b
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newCoalescingConn(conn)
	var want []byte
	for i, n := range []int{4096, 28000, 40} {
		p := pattern(n, byte(i))
		want = append(want, p...)
		c.Write(p)
	}
	if c.held != 0 {
		t.Fatal("the packet's tail should have sent everything held")
	}
	if c.buf != nil {
		t.Fatal("the held buffer should be given back once sent: an idle connection holds none")
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, want %d in order", len(b), len(want))
	}
}

package platform

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPipeModeBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	data := make([]byte, 10<<20)
	rand.Read(data)
	o := tp.run("demo", "cat", false, nil)
	conn, br := o.attach()
	writeErr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		if err == nil {
			err = conn.CloseWrite()
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Errorf("round trip differs: %d bytes back of %d", len(got), len(data))
	}
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Errorf("wait: %d exit %d", status, code)
	}
}

func TestPipeModeStdinHash(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	data := make([]byte, 1<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	o := tp.run("demo", "sha256sum", false, nil)
	conn, br := o.attach()
	go func() {
		conn.Write(data)
		conn.CloseWrite()
	}()
	out, _ := io.ReadAll(br)
	if !strings.HasPrefix(string(out), hex.EncodeToString(sum[:])) {
		t.Errorf("got %q", out)
	}
}

func TestTerminalEOFByte(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "cat >/dev/null; echo got-eof", true, nil)
	conn, br := o.attach()
	conn.Write([]byte("hello\n\x04"))
	readUntil(t, br, "got-eof")
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Errorf("wait: %d exit %d", status, code)
	}
}

func TestTerminalCtrlC(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	m := sleepMarker()
	o := tp.run("demo", "sleep "+m+"; echo not-interrupted", true, nil)
	conn, br := o.attach()
	waitPids(t, m, 1) // a Ctrl-C before sleep runs would hit the shell alone
	conn.Write([]byte{0x03})
	io.Copy(io.Discard, br)
	if status, code := o.wait(); status != 200 || code != 130 {
		t.Errorf("wait: %d exit %d, want 130", status, code)
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "stty size; read x; stty size", true, nil)
	resize := func(body string) int {
		req, _ := http.NewRequest("PUT", o.attachURL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		status, _ := tp.do(o.basic(req))
		return status
	}
	if s := resize(`{"width": "100", "height": "30"}`); s != 200 { // before attach: applied at start
		t.Errorf("resize: %d", s)
	}
	if s := resize(`{"width": "0", "height": "0"}`); s != 200 { // ignored
		t.Errorf("resize 0x0: %d", s)
	}
	conn, br := o.attach()
	readUntil(t, br, "30 100")
	if s := resize(`{"width": 120, "height": 40}`); s != 200 {
		t.Errorf("resize with numbers: %d", s)
	}
	if s := resize(`{"width": "wide", "height": 40}`); s != 422 {
		t.Errorf("bad resize: %d", s)
	}
	conn.Write([]byte("\n"))
	readUntil(t, br, "40 120")
}

func TestAttachAnswerAloneInItsWrite(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "echo early", false, nil)
	_, conn, br := o.attachRaw(tp.token)
	defer conn.Close()
	// What follows the 200 is exactly the output.
	out, _ := io.ReadAll(br)
	if !bytes.Equal(out, []byte("early\n")) {
		t.Errorf("got %q", out)
	}
}

// An attach stream whose client is on this host gets a send buffer of a few
// segments instead of autotuning's megabytes (BenchmarkPipeThroughput shows
// the rate it gains).
func TestLoopbackSendBuffer(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "echo ready; read x", false, nil)
	conn, br := o.attach()
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	u, err := url.Parse(o.attachURL)
	if err != nil {
		t.Fatal(err)
	}
	oo := tp.byAttachToken(strings.TrimPrefix(u.Path, "/"))
	if oo == nil {
		t.Fatalf("no one-off for %s", u.Path)
	}
	oo.mu.Lock()
	server := oo.conn.(*net.TCPConn)
	oo.mu.Unlock()
	rc, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var sndbuf, mss int
	var serr, merr error
	if err := rc.Control(func(fd uintptr) {
		sndbuf, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		mss, merr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	}); err != nil || serr != nil || merr != nil {
		t.Fatalf("getsockopt: %v %v %v", err, serr, merr)
	}
	// The kernel reports twice the size asked, its bookkeeping included.
	if want := 2 * max(loopbackSendBuffer, loopbackSendSegments*mss); sndbuf != want {
		t.Errorf("attach stream's send buffer: %d bytes, want %d (segment %d)", sndbuf, want, mss)
	}
	conn.Write([]byte("\n"))
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Errorf("wait: %d exit %d", status, code)
	}
}

package proxyprotocol

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"sshbridge/internal/testkit"
)

// server listens on loopback with cfg and hands each accepted *Conn to
// the test.
func server(t *testing.T, cfg Config) (addr string, conns <-chan *Conn, logs *testkit.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs = &testkit.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	pl := NewListener(ln, cfg)
	t.Cleanup(func() { pl.Close() })
	ch := make(chan *Conn, 4)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c.(*Conn)
		}
	}()
	return ln.Addr().String(), ch, logs
}

// dial connects from the loopback address from.
func dial(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func accept(t *testing.T, conns <-chan *Conn) *Conn {
	t.Helper()
	select {
	case c := <-conns:
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	return nil
}

func from(t *testing.T, list ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseFrom(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var client = &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40022}
var frontend = &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 22}

// From an allowed address, a version 1 or 2 header gives the client's
// address; what follows the header reads intact, and writes reach the
// peer.
func TestHeaderGivesClientAddress(t *testing.T) {
	for _, version := range []byte{1, 2} {
		addr, conns, _ := server(t, Config{From: from(t, "127.0.0.0/8")})
		peer := dial(t, addr, "127.0.0.1")
		if _, err := proxyproto.HeaderProxyFromAddrs(version, client, frontend).WriteTo(peer); err != nil {
			t.Fatal(err)
		}
		io.WriteString(peer, "SSH-2.0-client\r\n")
		c := accept(t, conns)
		if !c.HeaderRequired() {
			t.Fatal("127.0.0.1 is in From, yet no header is required")
		}
		if err := c.ReadHeader(); err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		if got := c.RemoteAddr().String(); got != "203.0.113.7:40022" {
			t.Fatalf("v%d: RemoteAddr %s, want the header's client", version, got)
		}
		if via := c.Via(); via == nil || !strings.HasPrefix(via.String(), "127.0.0.1:") {
			t.Fatalf("v%d: Via %v, want the balancer", version, via)
		}
		if c.Local() {
			t.Fatalf("v%d: a header with a client address is taken for LOCAL", version)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if line != "SSH-2.0-client\r\n" {
			t.Fatalf("v%d: after the header: %q, %v", version, line, err)
		}
		io.WriteString(c, "SSH-2.0-server\r\n")
		if line, err := bufio.NewReader(peer).ReadString('\n'); line != "SSH-2.0-server\r\n" {
			t.Fatalf("v%d: the peer read %q, %v", version, line, err)
		}
	}
}

// A version 2 LOCAL header (a balancer's health check) and version 1's
// UNKNOWN carry no client address: the connection is the balancer's own.
func TestLocalHeader(t *testing.T) {
	for name, write := range map[string]func(w io.Writer) error{
		"v2 LOCAL":   WriteLocal,
		"v1 UNKNOWN": func(w io.Writer) error { _, err := io.WriteString(w, "PROXY UNKNOWN\r\n"); return err },
	} {
		addr, conns, _ := server(t, Config{From: from(t, "127.0.0.1")})
		peer := dial(t, addr, "127.0.0.1")
		if err := write(peer); err != nil {
			t.Fatal(err)
		}
		c := accept(t, conns)
		if err := c.ReadHeader(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !c.Local() || c.Via() != nil {
			t.Fatalf("%s: Local %v, Via %v; want a local connection", name, c.Local(), c.Via())
		}
		if got := c.RemoteAddr().String(); !strings.HasPrefix(got, "127.0.0.1:") {
			t.Fatalf("%s: RemoteAddr %s, want the balancer's", name, got)
		}
	}
}

// From an allowed address a header is required: one that sends its SSH
// identification string instead, or nothing within the timeout, is
// refused, logged, and nothing is written to it.
func TestHeaderRequiredFromAllowed(t *testing.T) {
	addr, conns, logs := server(t, Config{From: from(t, "127.0.0.1"), ReadHeaderTimeout: 300 * time.Millisecond})

	peer := dial(t, addr, "127.0.0.1")
	io.WriteString(peer, "SSH-2.0-client\r\n")
	c := accept(t, conns)
	err := c.ReadHeader()
	if !errors.Is(err, ErrHeader) {
		t.Fatalf("no header: %v, want ErrHeader", err)
	}
	if _, werr := c.Write([]byte("x")); !errors.Is(werr, ErrHeader) {
		t.Fatalf("a write after a refused header: %v", werr)
	}
	if _, rerr := c.Read(make([]byte, 1)); !errors.Is(rerr, ErrHeader) {
		t.Fatalf("a read after a refused header: %v", rerr)
	}
	if c.Local() {
		t.Fatal("a refused connection taken for LOCAL")
	}

	silent := dial(t, addr, "127.0.0.1")
	c = accept(t, conns)
	start := time.Now()
	if err := c.ReadHeader(); !errors.Is(err, ErrHeader) {
		t.Fatalf("silent: %v, want ErrHeader", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a silent connection refused after %s, want the 300ms timeout", took)
	}
	if n := strings.Count(logs.String(), "no PROXY protocol header (within 300ms)"); n != 2 {
		t.Fatalf("%d refusals logged, want 2:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "remote=127.0.0.1:") {
		t.Fatalf("refusal logged without the remote address:\n%s", logs)
	}
	silent.Close()

	// A malformed header.
	peer = dial(t, addr, "127.0.0.1")
	io.WriteString(peer, "PROXY TCP4 203.0.113.7 nonsense\r\n")
	c = accept(t, conns)
	if err := c.ReadHeader(); !errors.Is(err, ErrHeader) {
		t.Fatalf("malformed: %v, want ErrHeader", err)
	}
	if !strings.Contains(logs.String(), "a bad PROXY protocol header") {
		t.Fatalf("malformed header not logged:\n%s", logs)
	}
}

// From any other address a header is refused at the first read, and the
// address stays the socket's; a connection without one is served as it
// is, written to before the client sends anything.
func TestHeaderRefusedFromOthers(t *testing.T) {
	addr, conns, logs := server(t, Config{From: from(t, "10.0.0.0/8")})

	peer := dial(t, addr, "127.0.0.2")
	proxyproto.HeaderProxyFromAddrs(2, client, frontend).WriteTo(peer)
	io.WriteString(peer, "SSH-2.0-client\r\n")
	c := accept(t, conns)
	if c.HeaderRequired() || c.ReadHeader() != nil || c.Local() || c.Via() != nil {
		t.Fatal("a header is expected from an address not in From")
	}
	if _, err := c.Read(make([]byte, 64)); !errors.Is(err, ErrHeader) {
		t.Fatalf("a header from an address not allowed: %v, want ErrHeader", err)
	}
	if got := c.RemoteAddr().String(); !strings.HasPrefix(got, "127.0.0.2:") {
		t.Fatalf("RemoteAddr %s, want the socket's peer", got)
	}
	if !strings.Contains(logs.String(), "a PROXY protocol header from an address not allowed to send one") {
		t.Fatalf("refusal not logged:\n%s", logs)
	}

	// No header: the server speaks first, then reads the client's bytes.
	peer = dial(t, addr, "127.0.0.2")
	c = accept(t, conns)
	if _, err := io.WriteString(c, "SSH-2.0-server\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(peer).ReadString('\n'); line != "SSH-2.0-server\r\n" {
		t.Fatalf("the client read %q, %v", line, err)
	}
	io.WriteString(peer, "SSH-2.0-client\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); line != "SSH-2.0-client\r\n" {
		t.Fatalf("the server read %q, %v", line, err)
	}
}

func TestParseFrom(t *testing.T) {
	got, err := ParseFrom([]string{"10.0.0.0/8", " 192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 198.51.100.1/32]"
	if s := fmtPrefixes(got); s != want {
		t.Fatalf("ParseFrom: %s, want %s", s, want)
	}
	for _, bad := range []string{"10.0.0.1/8", "example.com", "10.0.0.0/33", "fe80::1%eth0"} {
		if _, err := ParseFrom([]string{"192.0.2.7", bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseFrom(%q): %v, want an error naming it", bad, err)
		}
	}
	if _, err := ParseFrom([]string{"10.0.0.1/8"}); err == nil || err.Error() != "host bits set: the block is 10.0.0.0/8" {
		t.Errorf("ParseFrom(10.0.0.1/8): %v", err)
	}
	p := from(t, "127.0.0.0/8")
	if !Allowed(p, &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.9"), Port: 1}) {
		t.Error("an IPv4-mapped address is not its IPv4 address")
	}
	if Allowed(p, &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}) || Allowed(p, nil) {
		t.Error("an address outside the blocks allowed")
	}
}

func fmtPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// Behind a load balancer: the built bridge with --proxy-protocol-from,
// OpenSSH's ssh reaching it through a relay of the test's that opens each
// connection with a PROXY protocol header, as HAProxy or a cloud balancer
// does.

// relay is a load balancer of the test's: it listens on loopback and
// passes each connection on to the bridge from 127.0.0.1, opening it with
// a PROXY protocol header of its version that gives the client as
// clientIP with the port the client connected from.
type relay struct {
	Port string

	mu    sync.Mutex
	ports []int // the client ports it passed on, in order
}

func startRelay(t *testing.T, b *Bridge, version byte, clientIP string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &relay{}
	_, r.Port, _ = net.SplitHostPort(ln.Addr().String())
	target, err := net.ResolveTCPAddr("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pass(in, target, version, clientIP)
		}
	}()
	// The bridge's host key for the relay's port, as ssh names it.
	known, err := os.ReadFile(b.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := strings.Cut(strings.SplitN(string(known), "\n", 2)[0], " ")
	f, err := os.OpenFile(b.KnownHosts, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[%s]:%s %s\n", b.Host, r.Port, key)
	f.Close()
	return r
}

func (r *relay) pass(in net.Conn, target *net.TCPAddr, version byte, clientIP string) {
	defer in.Close()
	out, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, target)
	if err != nil {
		return
	}
	defer out.Close()
	port := in.RemoteAddr().(*net.TCPAddr).Port
	r.mu.Lock()
	r.ports = append(r.ports, port)
	r.mu.Unlock()
	client := &net.TCPAddr{IP: net.ParseIP(clientIP), Port: port}
	if _, err := proxyproto.HeaderProxyFromAddrs(version, client, target).WriteTo(out); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(out, in)
		out.CloseWrite()
		close(done)
	}()
	io.Copy(in, out)
	in.(*net.TCPConn).CloseWrite()
	<-done
}

func (r *relay) lastPort(t *testing.T) int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ports) == 0 {
		t.Fatal("the relay passed no connection on")
	}
	return r.ports[len(r.ports)-1]
}

// sshVia runs command in app with ssh connecting to port on the bridge's
// host (a relay's).
func sshVia(t *testing.T, b *Bridge, port, app string, command ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(b.SSHArgs(""), "-p", port, "-o", "LogLevel=ERROR", app+"@"+b.Host)
	return runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), append(args, command...)...), nil)
}

// linesWith are the log's lines that hold every one of parts.
func linesWith(log string, parts ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// Through a balancer sending a v1 or a v2 header, the client's address is
// the header's: from= lets in that address and refuses another, and the
// connection's log lines and the audit lines name it, with the balancer
// as via=. A client reaching the bridge directly from the balancer's
// address, without a header, is refused.
func TestProxyProtocolClientAddress(t *testing.T) {
	for _, version := range []byte{1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			auditLog := filepath.Join(t.TempDir(), "audit.jsonl")
			b := StartBridge(t, Options{
				AuthorizedKeys: keyLine(t, `from="203.0.113.7"`),
				Args:           []string{"--proxy-protocol-from", "127.0.0.1,10.0.0.0/8", "--audit-log", auditLog},
			})
			allowed := startRelay(t, b, version, "203.0.113.7")
			if r := sshVia(t, b, allowed.Port, "demo-app", "echo", "in"); r.Code != 0 || r.Stdout != "in\n" {
				t.Fatalf("from the address from= allows: %+v\n%s", r, b.Log())
			}
			remote := fmt.Sprintf("remote=203.0.113.7:%d ", allowed.lastPort(t))
			log, ok := b.LogWhen(func(log string) bool {
				return len(linesWith(log, remote, `msg="auth accepted key"`, "decision=accept")) == 1 &&
					len(linesWith(log, remote, `msg="auth verified"`)) == 1 &&
					len(linesWith(log, remote, "via=127.0.0.1:", "conn=")) > 0
			})
			if !ok {
				t.Fatalf("no audit line, verified line and connection lines with %s via=127.0.0.1:\n%s", remote, log)
			}
			// The audit stream's connection and auth events carry the
			// client's address too.
			wantRemote := fmt.Sprintf(`"remote":"203.0.113.7:%d"`, allowed.lastPort(t))
			audit, err := os.ReadFile(auditLog)
			if err != nil || !strings.Contains(string(audit), `"event":"connection"`) || !strings.Contains(string(audit), `"event":"auth"`) ||
				strings.Count(string(audit), wantRemote) < 2 {
				t.Fatalf("the audit stream lacks the client's address %s in its connection and auth events (%v):\n%s", wantRemote, err, audit)
			}

			// Bulk output reaches the client whole through the balancer.
			var want strings.Builder
			for i := 1; i <= 200000; i++ {
				fmt.Fprintln(&want, i)
			}
			if r := sshVia(t, b, allowed.Port, "demo-app", "seq", "200000"); r.Code != 0 || r.Stdout != want.String() {
				t.Fatalf("seq 200000 through the balancer: exit %d, %d bytes (want %d), stderr %q", r.Code, len(r.Stdout), want.Len(), r.Stderr)
			}

			other := startRelay(t, b, version, "198.51.100.9")
			if r := sshVia(t, b, other.Port, "demo-app", "echo", "in"); r.Code != 255 || !strings.Contains(r.Stderr, "Permission denied") {
				t.Fatalf("from an address from= does not allow: %+v", r)
			}
			remote = fmt.Sprintf("remote=198.51.100.9:%d ", other.lastPort(t))
			if log, ok := b.LogWhen(func(log string) bool {
				return len(linesWith(log, remote, `msg="auth refused"`, "from=")) > 0
			}); !ok {
				t.Fatalf("no refusal for %s by from=:\n%s", remote, log)
			}

			// Straight from the balancer's address, no header: refused.
			r := b.Run("demo-app", nil, "echo", "in")
			if r.Code != 255 || r.Stdout != "" {
				t.Fatalf("without a header from an address that must send one: %+v", r)
			}
			if !b.LogHas(`msg="connection closed: no PROXY protocol header (within 10s) from an address that must send one" remote=127.0.0.1:`) {
				t.Fatalf("the refusal is not logged:\n%s", b.Log())
			}
		})
	}
}

// From an address not in --proxy-protocol-from a header is refused and
// the connection closed, whichever version; a client there without one
// is served as ever.
func TestProxyProtocolRefusedFromOthers(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--proxy-protocol-from", "10.0.0.0/8,2001:db8::/32"}})
	for _, version := range []byte{1, 2} {
		spoof := startRelay(t, b, version, "203.0.113.7")
		if r := sshVia(t, b, spoof.Port, "demo-app", "echo", "in"); r.Code != 255 || r.Stdout != "" {
			t.Fatalf("v%d header from 127.0.0.1: %+v", version, r)
		}
	}
	log, ok := b.LogWhen(func(log string) bool {
		return len(linesWith(log, `msg="connection closed: a PROXY protocol header from an address not allowed to send one" remote=127.0.0.1:`)) == 2
	})
	if !ok {
		t.Fatalf("want two refusals logged:\n%s", log)
	}
	if strings.Contains(log, "203.0.113.7") {
		t.Fatalf("a refused header's address reached the log:\n%s", log)
	}
	if r := b.Run("demo-app", nil, "echo", "in"); r.Code != 0 || r.Stdout != "in\n" {
		t.Fatalf("a direct client without a header: %+v", r)
	}
}

var penalisedSourceRE = regexp.MustCompile(`msg="source penalised" source=(\S+) event=(\S+)`)

// A balancer's own connections, opening with a v2 LOCAL header, that read
// the bridge's identification string and close (health checks), cost the
// balancer's address no penalty, while one such connection passed on for
// a client penalises that client's address; `bridge healthcheck` with the
// bridge's BRIDGE_PROXY_PROTOCOL_FROM sends LOCAL, and without it is
// refused.
func TestProxyProtocolLocalHealthCheck(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{
		"--proxy-protocol-from", "127.0.0.1", "--per-source-penalties", "noauth:5s min:5s max:1m",
	}})
	for range 3 {
		c, err := dialFrom(b, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).WriteTo(c); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("a LOCAL connection got no identification string: %q, %v", line, err)
		}
		c.Close()
	}
	for _, env := range [][]string{{"BRIDGE_PROXY_PROTOCOL_FROM=127.0.0.0/8"}, nil} {
		r := runBinary(t, env, "healthcheck", "--listen", b.Addr)
		if want := map[bool]int{true: 0, false: 1}[env != nil]; r.Code != want {
			t.Fatalf("healthcheck with %v: %+v, want exit %d", env, r, want)
		}
	}

	// The control: the same, passed on for a client.
	proxied := startRelay(t, b, 2, "203.0.113.9")
	c, err := net.Dial("tcp", net.JoinHostPort(b.Host, proxied.Port))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("a proxied connection got no identification string: %q, %v", line, err)
	}
	c.Close()
	log, ok := b.LogWhen(func(log string) bool { return strings.Contains(log, "source=203.0.113.9 event=noauth") })
	if !ok {
		t.Fatalf("a proxied connection without authentication did not penalise its client:\n%s", log)
	}
	for _, m := range penalisedSourceRE.FindAllStringSubmatch(log, -1) {
		if m[1] != "203.0.113.9" {
			t.Fatalf("%s penalised (%s); only the proxied client should be:\n%s", m[1], m[2], log)
		}
	}
	if n := len(linesWith(log, "PROXY protocol LOCAL", "remote=127.0.0.1:")); n != 4 {
		t.Fatalf("%d LOCAL connections logged, want 4 (3 and the healthcheck):\n%s", n, log)
	}
}

// A bad --proxy-protocol-from stops the bridge and healthcheck with one
// line naming it and what is wrong (exit 2).
func TestProxyProtocolFlagRefused(t *testing.T) {
	for _, tc := range []struct {
		env        []string
		args       []string
		name, want string
	}{
		{args: []string{"--proxy-protocol-from", "10.0.0.1/8"}, name: `--proxy-protocol-from "10.0.0.1/8"`, want: "host bits set: the block is 10.0.0.0/8"},
		{env: []string{"BRIDGE_PROXY_PROTOCOL_FROM=10.0.0.0/8,lb.example.com"}, name: `BRIDGE_PROXY_PROTOCOL_FROM="10.0.0.0/8,lb.example.com"`, want: `"lb.example.com": not an IP address or CIDR block`},
	} {
		for _, sub := range [][]string{{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, {"healthcheck"}} {
			r := runBinary(t, tc.env, append(sub, tc.args...)...)
			line := oneLine(t, tc.name, r.Stderr)
			if r.Code != 2 || !strings.Contains(line, tc.name) || !strings.Contains(line, tc.want) {
				t.Errorf("%v %s: exit %d, %q; want exit 2 naming it and saying %q", sub[:1], tc.name, r.Code, line, tc.want)
			}
		}
	}
}

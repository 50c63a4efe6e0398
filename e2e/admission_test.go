package e2e

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
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

	gossh "golang.org/x/crypto/ssh"
)

// Who gets to authenticate, against the built bridge: the caps on
// unauthenticated connections (MaxStartups, PerSourceMaxStartups), the
// per-source penalties (PerSourcePenalties and its exempt list) and the
// count of authentication attempts (MaxAuthTries), with OpenSSH's ssh and
// small x/crypto clients for what ssh cannot do (hold many connections,
// offer ten keys, start 200 logins at once).

// hostKeyOf is the bridge's host public key, for the x/crypto clients.
func hostKeyOf(t *testing.T, b *Bridge) gossh.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

// strangers are keys no bridge knows.
func strangers(t *testing.T, n int) []gossh.Signer {
	t.Helper()
	out := make([]gossh.Signer, n)
	for i := range out {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = gossh.NewSignerFromKey(priv); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// dialFrom opens a TCP connection to the bridge from the loopback address
// from (any of 127/8 is this host's).
func dialFrom(b *Bridge, from string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", b.Addr)
}

// attempt is one x/crypto login: its local address (as the bridge logs
// the remote), how long the handshake took, the banners it was shown and
// its error.
type attempt struct {
	local   string
	took    time.Duration
	banners string
	err     error
}

// loginOn authenticates as app on an open connection with keys offered in
// order, and closes it.
func loginOn(conn net.Conn, hostKey gossh.PublicKey, app string, keys ...gossh.Signer) attempt {
	at := attempt{local: conn.LocalAddr().String()}
	var mu sync.Mutex
	cfg := &gossh.ClientConfig{
		User:            app,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(keys...)},
		HostKeyCallback: gossh.FixedHostKey(hostKey),
		BannerCallback: func(msg string) error {
			mu.Lock()
			defer mu.Unlock()
			at.banners += msg
			return nil
		},
		Timeout: 30 * time.Second,
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	c, chans, reqs, err := gossh.NewClientConn(conn, conn.RemoteAddr().String(), cfg)
	at.took = time.Since(start)
	if err == nil {
		gossh.NewClient(c, chans, reqs).Close()
	}
	conn.Close()
	mu.Lock()
	defer mu.Unlock()
	at.err = err
	return at
}

// login dials from a loopback address and logs in.
func login(t *testing.T, b *Bridge, from, app string, keys ...gossh.Signer) attempt {
	t.Helper()
	conn, err := dialFrom(b, from)
	if err != nil {
		t.Fatal(err)
	}
	return loginOn(conn, hostKeyOf(t, b), app, keys...)
}

// connLines waits until the bridge logged a line with msg for the
// connection from local, and returns every line of that connection.
func connLines(t *testing.T, b *Bridge, local, msg string) []string {
	t.Helper()
	tag := "remote=" + local + " "
	log, ok := b.LogWhen(func(log string) bool {
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l+" ", tag) && strings.Contains(l, msg) {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no %q logged for %s:\n%s", msg, local, log)
	}
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l+" ", tag) {
			lines = append(lines, l)
		}
	}
	return lines
}

// servedUnderPenalty logs in from a loopback address with the default key
// and says whether the bridge served the connection as penalised.
func servedUnderPenalty(t *testing.T, b *Bridge, from string) bool {
	t.Helper()
	at := login(t, b, from, "demo-app", loadSigner(t, b.Key))
	if at.err != nil {
		t.Fatalf("a good key from %s refused: %v", from, at.err)
	}
	for _, l := range connLines(t, b, at.local, `msg="auth verified"`) {
		if strings.Contains(l, "penalised source") {
			return true
		}
	}
	return false
}

// failFrom makes n failed logins (an unknown key) from a loopback address
// at once, with OpenSSH's client bound to it, and checks each failed.
func failFrom(t *testing.T, b *Bridge, from string, n int) {
	t.Helper()
	stranger := clientKey(t, "stranger")
	results := make(chan Result, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append(b.SSHArgs(stranger), "-p", b.Port, "-b", from, "-o", "LogLevel=ERROR", "demo-app@"+b.Host, "true")
			results <- runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
		}()
	}
	for range n {
		if r := <-results; r.Code != 255 || !strings.Contains(r.Stderr, "Permission denied") {
			t.Fatalf("a failed login from %s: %+v", from, r)
		}
	}
}

// A few hundred silent connections from one address: the bridge keeps
// only --per-source-max-startups of them and closes the rest at once,
// before its identification string; a login from another address goes
// through at once, and a session on a connection authenticated before
// the flood still runs. When the silent ones reach the login grace time
// they are closed and count against their source, whose authorized key
// still gets in.
func TestAdmissionSilentFlood(t *testing.T) {
	const flood, perSource = 300, 10
	b := StartBridge(t, Options{Args: []string{
		"--max-startups", "40:30:60", "--per-source-max-startups", fmt.Sprint(perSource), "--login-grace-time", "6s",
	}})
	hostKey := hostKeyOf(t, b)

	// A connection authenticated before the flood.
	pre, err := dialFrom(b, "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	c, chans, reqs, err := gossh.NewClientConn(pre, b.Addr, &gossh.ClientConfig{
		User: "demo-app", Auth: []gossh.AuthMethod{gossh.PublicKeys(loadSigner(t, b.Key))},
		HostKeyCallback: gossh.FixedHostKey(hostKey), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	established := gossh.NewClient(c, chans, reqs)
	defer established.Close()

	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := dialFrom(b, "127.0.0.1")
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		conns = append(conns, c)
	}
	// Each connection either gets the bridge's identification string (it
	// was kept) or is closed without it (dropped).
	var kept []net.Conn
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		switch {
		case strings.HasPrefix(line, "SSH-2.0-"):
			kept = append(kept, c)
		case errors.Is(err, io.EOF) || isReset(err):
		default:
			t.Fatalf("a silent connection got %q, %v", line, err)
		}
	}
	if len(kept) != perSource {
		t.Fatalf("%d of %d silent connections kept, want %d", len(kept), flood, perSource)
	}
	if !b.LogHas("connections dropped before authentication") {
		t.Fatalf("drops not logged:\n%s", b.Log())
	}

	// The flooding address has no room left; another gets in at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-b", "127.0.0.1"}, "true"), nil); r.Code != 255 {
		t.Fatalf("a login from the flooding address: %+v", r)
	}
	start := time.Now()
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-b", "127.0.0.2"}, "echo", "in"), nil)
	if r.Code != 0 || r.Stdout != "in\n" {
		t.Fatalf("a login from another address during the flood: %+v", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a login from another address took %s during the flood", took)
	}
	s, err := established.NewSession()
	if err != nil {
		t.Fatalf("a session on an established connection: %v", err)
	}
	if out, err := s.Output("echo still"); err != nil || string(out) != "still\n" {
		t.Fatalf("a session on an established connection: %q, %v", out, err)
	}

	// At the grace time the kept ones are closed, and count.
	for _, c := range kept {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Fatalf("a kept silent connection: %v", err)
		}
	}
	if !b.LogHas("event=grace-exceeded") {
		t.Fatalf("grace timeouts did not penalise their source:\n%s", b.Log())
	}
	if !servedUnderPenalty(t, b, "127.0.0.1") {
		t.Fatalf("the source of the grace timeouts is not penalised:\n%s", b.Log())
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// 20 failed logins from 127.0.0.1 (with the default penalties), then a
// good key gets in at once, and so do 200 logins at once from that same
// address, as a CI fan-out behind a NAT makes them.
func TestAdmissionGoodKeyAfterFailures(t *testing.T) {
	b := StartBridge(t, Options{})
	failFrom(t, b, "127.0.0.1", 20)
	if r := b.Run("demo-app", nil, "echo", "in"); r.Code != 0 || r.Stdout != "in\n" {
		t.Fatalf("a good key after 20 failures: %+v", r)
	}
	if !b.LogHas("source penalised") {
		t.Fatalf("20 failures did not penalise the address:\n%s", b.Log())
	}

	// 200 connections first, then 200 handshakes at once.
	const fanOut = 200
	hostKey, key := hostKeyOf(t, b), loadSigner(t, b.Key)
	conns := make([]net.Conn, fanOut)
	for i := range conns {
		c, err := dialFrom(b, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	results := make(chan attempt, fanOut)
	for _, c := range conns {
		go func() { results <- loginOn(c, hostKey, "demo-app", key) }()
	}
	failed := 0
	var first error
	for range fanOut {
		if at := <-results; at.err != nil {
			failed++
			if first == nil {
				first = at.err
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent logins failed, the first with: %v", failed, fanOut, first)
	}
}

var penalisedUntilRE = regexp.MustCompile(`penalised source.* until=(\S+)`)

// With short penalties: below min nothing happens; at min the source is
// penalised, its refused keys are answered only after a second while its
// good key gets in, and it runs out when the logged time comes.
func TestAdmissionPenaltiesApplyAndExpire(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--per-source-penalties", "authfail:3s min:4s max:6s"}})
	bad := strangers(t, 1)[0]

	if at := login(t, b, "127.0.0.1", "demo-app", bad); at.err == nil {
		t.Fatal("an unknown key got in")
	}
	if servedUnderPenalty(t, b, "127.0.0.1") {
		t.Fatal("penalised below min")
	}
	at := login(t, b, "127.0.0.1", "demo-app", bad) // 6 s, less the time since the first: min
	if at.err == nil {
		t.Fatal("an unknown key got in")
	}
	connLines(t, b, at.local, "auth refused")
	if !b.LogHas("source penalised") {
		t.Fatalf("min reached and no penalty:\n%s", b.Log())
	}

	// Penalised: a good key gets in, an unknown one waits.
	if !servedUnderPenalty(t, b, "127.0.0.1") {
		t.Fatalf("not penalised at min:\n%s", b.Log())
	}
	if at := login(t, b, "127.0.0.1", "demo-app", bad); at.err == nil || at.took < time.Second {
		t.Fatalf("an unknown key while penalised: refused after %s (%v), want a second or more", at.took, at.err)
	}
	// Another address is not penalised.
	if servedUnderPenalty(t, b, "127.0.0.2") {
		t.Fatal("another address penalised")
	}

	// It runs out when the last penalised connection's log said.
	var until time.Time
	for {
		at := login(t, b, "127.0.0.1", "demo-app", loadSigner(t, b.Key))
		if at.err != nil {
			t.Fatalf("a good key: %v", at.err)
		}
		penalised := false
		for _, l := range connLines(t, b, at.local, `msg="auth verified"`) {
			if m := penalisedUntilRE.FindStringSubmatch(l); m != nil {
				penalised = true
				var err error
				if until, err = time.Parse(time.RFC3339, m[1]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !penalised {
			if until.IsZero() {
				t.Fatal("not penalised after the last failure")
			}
			break
		}
		if time.Now().After(until.Add(3 * time.Second)) {
			t.Fatalf("still penalised 3 s after %s", until.Format(time.RFC3339))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// until is logged in whole seconds: the penalty may end up to a second
	// before it.
	if now := time.Now(); now.Before(until.Add(-time.Second)) {
		t.Fatalf("the penalty ran out at %s, before %s", now.Format(time.RFC3339Nano), until.Format(time.RFC3339))
	}
}

// An address on the exempt list is never penalised; others are.
func TestAdmissionPenaltyExemptList(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{
		"--per-source-penalties", "authfail:5s min:5s max:1m", "--per-source-penalty-exempt-list", "127.0.0.2,10.0.0.0/8",
	}})
	failFrom(t, b, "127.0.0.1", 2)
	failFrom(t, b, "127.0.0.2", 2)
	if !servedUnderPenalty(t, b, "127.0.0.1") {
		t.Fatalf("a source not exempt is not penalised:\n%s", b.Log())
	}
	if servedUnderPenalty(t, b, "127.0.0.2") {
		t.Fatal("an exempt source is penalised")
	}
	if strings.Contains(b.Log(), "source=127.0.0.2 ") {
		t.Fatalf("a penalty logged for an exempt source:\n%s", b.Log())
	}
}

// The other events count too: a key that may not use the app it asked
// for (app-denied), and connections that end without trying to
// authenticate (noauth), each with its own duration.
func TestAdmissionPenaltyEvents(t *testing.T) {
	b := StartBridge(t, Options{
		AuthorizedKeys: keyLine(t, `apps="demo-*"`),
		Args:           []string{"--per-source-penalties", "authfail:0 grace-exceeded:0 noauth:2s app-denied:5s min:5s max:1m"},
	})
	if r := b.Run("other-app", nil, "true"); r.Code != 240 {
		t.Fatalf("other-app: %+v", r)
	}
	if !b.LogHas("event=app-denied") || !servedUnderPenalty(t, b, "127.0.0.1") {
		t.Fatalf("a denied app did not penalise its source:\n%s", b.Log())
	}

	// Three connections that read the identification string and close:
	// 6 s, less the time they take.
	for range 3 {
		c, err := dialFrom(b, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("no identification string: %q, %v", line, err)
		}
		c.Close()
	}
	if !b.LogHas("event=noauth") || !servedUnderPenalty(t, b, "127.0.0.2") {
		t.Fatalf("connections without authentication did not penalise their source:\n%s", b.Log())
	}
}

// Six authentication failures end a connection, counted as OpenSSH counts
// them (each refused key offer, not only signatures): a client offering
// ten keys has six heard, then is told and disconnected; the right key
// sixth gets in, seventh does not.
func TestAdmissionMaxAuthTries(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--per-source-penalties", "no"}})
	good := loadSigner(t, b.Key)
	wrong := strangers(t, 10)

	at := login(t, b, "127.0.0.1", "demo-app", wrong...)
	if at.err == nil {
		t.Fatal("ten unknown keys got in")
	}
	lines := connLines(t, b, at.local, "too many authentication failures")
	if n := countContaining(lines, `msg="auth refused"`); n != 6 {
		t.Fatalf("%d key offers heard, want 6:\n%s", n, strings.Join(lines, "\n"))
	}
	if !strings.Contains(at.banners, "Too many authentication failures") {
		t.Fatalf("the client was not told why: banners %q, error %v", at.banners, at.err)
	}

	if at := login(t, b, "127.0.0.1", "demo-app", append(wrong[:5:5], good)...); at.err != nil {
		t.Fatalf("the right key offered sixth: %v", at.err)
	}
	at = login(t, b, "127.0.0.1", "demo-app", append(wrong[:6:6], good)...)
	if at.err == nil {
		t.Fatal("the right key offered seventh got in")
	}
	lines = connLines(t, b, at.local, "too many authentication failures")
	if fp := gossh.FingerprintSHA256(good.PublicKey()); countContaining(lines, fp) != 0 {
		t.Fatalf("the seventh key was heard:\n%s", strings.Join(lines, "\n"))
	}

	// OpenSSH's client, with the keys in files, offered in the order given.
	sshWith := func(wrongFirst int) Result {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := b.SSHArgs(clientKey(t, "wrong0"))
		for i := 1; i < wrongFirst; i++ {
			args = append(args, "-i", clientKey(t, fmt.Sprintf("wrong%d", i)))
		}
		args = append(args, "-i", b.Key, "-p", b.Port, "-o", "LogLevel=INFO", "demo-app@"+b.Host, "echo", "in")
		return runCmd(t, exec.CommandContext(ctx, need(t, "ssh"), args...), nil)
	}
	if r := sshWith(5); r.Code != 0 || r.Stdout != "in\n" {
		t.Fatalf("ssh with the right key sixth: %+v", r)
	}
	if r := sshWith(6); r.Code != 255 || r.Stdout != "" || !strings.Contains(r.Stderr, "Too many authentication failures") {
		t.Fatalf("ssh with the right key seventh: %+v", r)
	}
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// The admission flags take OpenSSH's syntax and refuse what it would not,
// in one line naming the flag or variable and the fix (exit 2).
func TestAdmissionFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		env        []string
		args       []string
		name, want string
	}{
		{args: []string{"--max-startups", "10:30"}, name: `--max-startups "10:30"`, want: "start:rate:full"},
		{args: []string{"--max-startups", "100:30:10"}, name: `--max-startups "100:30:10"`, want: "start must not be more than full"},
		{env: []string{"BRIDGE_MAX_STARTUPS=10:0:100"}, name: `BRIDGE_MAX_STARTUPS="10:0:100"`, want: "percentage"},
		{args: []string{"--per-source-max-startups", "0"}, name: `--per-source-max-startups "0"`, want: "more than 0"},
		{args: []string{"--per-source-penalties", "crash:90s"}, name: `--per-source-penalties "crash:90s"`, want: `unknown keyword "crash"`},
		{env: []string{"BRIDGE_PER_SOURCE_PENALTIES=min:20m max:10m"}, name: `BRIDGE_PER_SOURCE_PENALTIES="min:20m max:10m"`, want: "must not be more than max"},
		{args: []string{"--per-source-penalties", "authfail:soon"}, name: `--per-source-penalties "authfail:soon"`, want: "want a time"},
		{args: []string{"--per-source-penalty-exempt-list", "10.0.0.1/8"}, name: `--per-source-penalty-exempt-list "10.0.0.1/8"`, want: "inconsistent mask length"},
		{env: []string{"BRIDGE_PER_SOURCE_PENALTY_EXEMPT_LIST=*.example.com"}, name: `BRIDGE_PER_SOURCE_PENALTY_EXEMPT_LIST="*.example.com"`, want: "bad address"},
	} {
		r := runBinary(t, tc.env, append([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)...)
		line := oneLine(t, tc.name, r.Stderr)
		if r.Code != 2 || !strings.Contains(line, tc.name) || !strings.Contains(line, tc.want) {
			t.Errorf("%s: exit %d, %q; want exit 2 naming it and saying %q", tc.name, r.Code, line, tc.want)
		}
	}
}

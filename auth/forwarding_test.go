package auth

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// grantOf parses an option list the way a key file line is parsed and
// returns the Grant it gives.
func grantOf(t *testing.T, opts string) *Grant {
	t.Helper()
	o, err := parseOptions(opts, time.UTC)
	if err != nil {
		t.Fatalf("parseOptions(%q): %v", opts, err)
	}
	return o.grant("demo-app", "id", "fp", "test:1")
}

func TestParsePermitOptions(t *testing.T) {
	good := []struct {
		opts   string
		open   []string
		listen []string
	}{
		{`permitopen="db.internal:5432"`, []string{"db.internal:5432"}, nil},
		{`permitopen="[::1]:22",permitopen="192.0.2.1:*"`, []string{"[::1]:22", "192.0.2.1:*"}, nil},
		{`permitopen="*:443"`, []string{"*:443"}, nil},
		{`permitopen="*:*"`, []string{"*:*"}, nil},
		{`permitopen="host:65535"`, []string{"host:65535"}, nil},
		{`permitlisten="8080"`, nil, []string{"8080"}},
		{`permitlisten="*"`, nil, []string{"*"}},
		{`permitlisten="localhost:8080",permitlisten="[::1]:22000",permitlisten="0.0.0.0:*"`, nil,
			[]string{"localhost:8080", "[::1]:22000", "0.0.0.0:*"}},
		{`permitlisten="*.example.com:9000"`, nil, []string{"*.example.com:9000"}},
	}
	for _, tt := range good {
		g := grantOf(t, tt.opts)
		if strings.Join(g.PermitOpen, " ") != strings.Join(tt.open, " ") || strings.Join(g.PermitListen, " ") != strings.Join(tt.listen, " ") {
			t.Errorf("%s: PermitOpen %q PermitListen %q", tt.opts, g.PermitOpen, g.PermitListen)
		}
	}

	bad := []struct{ opts, want string }{
		{`permitopen=""`, `permitopen: bad value ""`},
		{`permitopen="db"`, `want "host:port"`},
		{`permitopen="8080"`, `want "host:port"`},
		{`permitopen=":80"`, "bad host"},
		{`permitopen="db:"`, "bad port"},
		{`permitopen="db:0"`, "bad port"},
		{`permitopen="db:65536"`, "bad port"},
		{`permitopen="db:http"`, "bad port"},
		{`permitopen="db:+80"`, "bad port"},
		{`permitopen="db:-1"`, "bad port"},
		{`permitopen="::1:22"`, "in brackets"},
		{`permitopen="[::1]"`, "followed by"},
		{`permitopen="[::1:22"`, "followed by"},
		{`permitopen="[::1]22"`, "followed by"},
		{`permitopen="db:80 x"`, "no blanks"},
		{`permitopen="` + strings.Repeat("a", 1025) + `:80"`, "bad host"},
		{`permitlisten=""`, "bad port"},
		{`permitlisten="0"`, "bad port"},
		{`permitlisten="localhost:0"`, "bad port"},
		{`permitlisten="localhost:"`, "bad port"},
		{`permitlisten="99999"`, "bad port"},
		{`permitlisten="[::1]"`, "followed by"},
	}
	for _, tt := range bad {
		_, err := parseOptions(tt.opts, time.UTC)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseOptions(%s): error %v, want one containing %q", tt.opts, err, tt.want)
		}
	}
}

func TestParseSessionMode(t *testing.T) {
	for opts, want := range map[string]string{
		`no-pty`:                             "",
		`session-mode="connection"`:          SessionModeConnection,
		`session-mode="session"`:             SessionModeSession,
		`SESSION-MODE="connection"`:          SessionModeConnection,
		`restrict,session-mode="connection"`: SessionModeConnection,
		`session-mode="connection",restrict`: SessionModeConnection,
		`restrict`:                           "",
	} {
		if got := grantOf(t, opts).SessionMode; got != want {
			t.Errorf("%s: SessionMode %q, want %q", opts, got, want)
		}
	}
	for opts, want := range map[string]string{
		`session-mode="Connection"`: `session-mode: bad value "Connection" (want "session" or "connection")`,
		`session-mode="conn"`:       `bad value "conn"`,
		`session-mode=""`:           `bad value ""`,
		`session-mode`:              "needs a quoted value",
		`session-mode="session",session-mode="connection"`: "given twice",
	} {
		_, err := parseOptions(opts, time.UTC)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", opts, err, want)
		}
	}
}

// TestPermitErrorsNameFileAndLine: a bad value is a load error naming the
// file and line, like every bad option.
func TestPermitErrorsNameFileAndLine(t *testing.T) {
	k := newKey(t)
	for opts, want := range map[string]string{
		`permitopen="db"`:          `authorized_keys:2: permitopen: bad value "db"`,
		`permitlisten="0"`:         `authorized_keys:2: permitlisten: bad value "0"`,
		`session-mode="sometimes"`: `authorized_keys:2: session-mode: bad value "sometimes"`,
	} {
		dir := t.TempDir()
		file := writeFile(t, dir, "authorized_keys", "# keys\n"+authLine(opts, k.PublicKey()))
		_, err := New(Config{AuthorizedKeysFile: file})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", opts, err, want)
		}
	}
}

func TestCheckOpen(t *testing.T) {
	tests := []struct {
		opts string
		host string
		port uint32
		want string // "" allowed, else a part of the error
	}{
		// The container's loopback, without any option.
		{"", "localhost", 8080, ""},
		{"", "LOCALHOST", 8080, ""},
		{"", "LocalHost", 1, ""},
		{"", "127.0.0.1", 5432, ""},
		{"", "127.8.9.10", 65535, ""},
		{"", "::1", 22, ""},
		{"", "::ffff:127.0.0.1", 22, ""},
		// Anything else needs a permitopen.
		{"", "db.internal", 5432, `forwarding to db.internal:5432 is not allowed for this key: only the container's loopback`},
		{"", "10.0.0.5", 80, "forwarding to 10.0.0.5:80 is not allowed"},
		{"", "2001:db8::1", 443, "forwarding to [2001:db8::1]:443 is not allowed"},
		{"", "localhost.", 80, "not allowed"},
		{"", "localhost.example.com", 80, "not allowed"},
		{"", "128.0.0.1", 80, "not allowed"},
		{"", "0.0.0.0", 80, "not allowed"},
		{"", "::", 80, "not allowed"},
		{"", "", 80, "not allowed"},
		{"", "0127.0.0.1", 80, "not allowed"},
		// Ports.
		{"", "localhost", 0, "the port must be 1 to 65535"},
		{"", "localhost", 65536, "the port must be 1 to 65535"},
		// permitopen: literal host (any case), port or "*".
		{`permitopen="db.internal:5432"`, "db.internal", 5432, ""},
		{`permitopen="db.internal:5432"`, "DB.Internal", 5432, ""},
		{`permitopen="db.internal:5432"`, "db.internal", 5433, "forwarding to db.internal:5433 is not allowed"},
		{`permitopen="db.internal:5432"`, "db", 5432, "not allowed"},
		{`permitopen="db.internal:5432"`, "10.0.0.5", 5432, "not allowed"},
		{`permitopen="*.internal:5432"`, "db.internal", 5432, "not allowed"}, // no patterns, as sshd
		{`permitopen="db.internal:*"`, "db.internal", 1, ""},
		{`permitopen="*:443"`, "example.com", 443, ""},
		{`permitopen="*:443"`, "example.com", 80, "not allowed"},
		{`permitopen="*:*"`, "example.com", 80, ""},
		{`permitopen="[2001:db8::1]:443"`, "2001:db8::1", 443, ""},
		{`permitopen="a:1",permitopen="b:2"`, "b", 2, ""},
		{`permitopen="a:1",permitopen="b:2"`, "a", 2, "not allowed"},
		// With permitopen entries the loopback stays allowed.
		{`permitopen="db.internal:5432"`, "localhost", 8080, ""},
		{`permitopen="db.internal:5432"`, "127.0.0.1", 8080, ""},
		// no-port-forwarding and restrict refuse everything, loopback and
		// permitopen included, unless port-forwarding comes later.
		{`no-port-forwarding`, "localhost", 8080, "port forwarding is not allowed for this key"},
		{`restrict`, "127.0.0.1", 8080, "no-port-forwarding or restrict"},
		{`restrict,permitopen="db:5432"`, "db", 5432, "port forwarding is not allowed"},
		{`restrict,port-forwarding`, "localhost", 8080, ""},
		{`port-forwarding,restrict`, "localhost", 8080, "port forwarding is not allowed"},
		{`no-port-forwarding,port-forwarding,permitopen="db:5432"`, "db", 5432, ""},
	}
	for _, tt := range tests {
		err := grantOf(t, tt.opts).CheckOpen(tt.host, tt.port)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("[%s] CheckOpen(%q, %d): %v, want allowed", tt.opts, tt.host, tt.port, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("[%s] CheckOpen(%q, %d): %v, want an error containing %q", tt.opts, tt.host, tt.port, err, tt.want)
		}
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		opts string
		host string
		port uint32
		bind string // when allowed
		want string // "" allowed, else a part of the error
	}{
		// No permitlisten: any port, bound to the loopback (GatewayPorts
		// no); 127.0.0.1 and ::1 kept as sshd keeps them.
		{"", "localhost", 8080, "localhost", ""},
		{"", "", 8080, "localhost", ""},
		{"", "*", 8080, "localhost", ""},
		{"", "0.0.0.0", 8080, "localhost", ""},
		{"", "::", 8080, "localhost", ""},
		{"", "10.1.2.3", 8080, "localhost", ""},
		{"", "example.com", 8080, "localhost", ""},
		{"", "127.0.0.1", 8080, "127.0.0.1", ""},
		{"", "::1", 8080, "::1", ""},
		{"", "localhost", 0, "localhost", ""},
		{"", "localhost", 1, "localhost", ""},
		{"", "localhost", 65536, "", "the port must be 0 (any) to 65535"},
		// A port alone: that port on any requested host, bound to loopback.
		{`permitlisten="8080"`, "localhost", 8080, "localhost", ""},
		{`permitlisten="8080"`, "0.0.0.0", 8080, "localhost", ""},
		{`permitlisten="8080"`, "", 8080, "localhost", ""},
		{`permitlisten="8080"`, "127.0.0.1", 8080, "127.0.0.1", ""},
		{`permitlisten="8080"`, "localhost", 8081, "", `listening on localhost:8081 is not allowed for this key: it may listen only where its permitlisten options say (8080)`},
		{`permitlisten="8080"`, "", 9000, "", "listening on *:9000 is not allowed"},
		// Port 0 (the listener picks) needs an entry with port "*".
		{`permitlisten="8080"`, "localhost", 0, "", "listening on localhost:0 is not allowed"},
		{`permitlisten="*"`, "localhost", 0, "localhost", ""},
		{`permitlisten="localhost:*"`, "localhost", 0, "localhost", ""},
		// A host: matched on the request as sent, lowercased, as an
		// OpenSSH pattern; "localhost" is not 127.0.0.1 (sshd(8)).
		{`permitlisten="localhost:8080"`, "localhost", 8080, "localhost", ""},
		{`permitlisten="localhost:8080"`, "LOCALHOST", 8080, "LOCALHOST", ""},
		{`permitlisten="localhost:8080"`, "127.0.0.1", 8080, "", "not allowed"},
		{`permitlisten="localhost:8080"`, "", 8080, "", "not allowed"},
		{`permitlisten="[::1]:22000"`, "::1", 22000, "::1", ""},
		{`permitlisten="[::1]:22000"`, "127.0.0.1", 22000, "", "not allowed"},
		// An entry with a host keeps the requested address.
		{`permitlisten="0.0.0.0:8080"`, "0.0.0.0", 8080, "0.0.0.0", ""},
		{`permitlisten="0.0.0.0:8080"`, "localhost", 8080, "", "not allowed"},
		{`permitlisten="*:8080"`, "0.0.0.0", 8080, "0.0.0.0", ""},
		{`permitlisten="*:8080"`, "", 8080, "", ""},
		{`permitlisten="*:8080"`, "*", 8080, "", ""},
		{`permitlisten="*:8080"`, "localhost", 8080, "localhost", ""},
		{`permitlisten="10.0.0.?:*"`, "10.0.0.7", 9, "10.0.0.7", ""},
		{`permitlisten="10.0.0.?:*"`, "10.0.0.17", 9, "", "not allowed"},
		// A host entry wins over a port alone for the same request.
		{`permitlisten="8080",permitlisten="0.0.0.0:8080"`, "0.0.0.0", 8080, "0.0.0.0", ""},
		{`permitlisten="0.0.0.0:8080",permitlisten="8080"`, "0.0.0.0", 8080, "0.0.0.0", ""},
		// no-port-forwarding and restrict refuse every listener.
		{`no-port-forwarding`, "localhost", 8080, "", "port forwarding is not allowed for this key"},
		{`restrict`, "localhost", 8080, "", "port forwarding is not allowed"},
		{`restrict,permitlisten="8080"`, "localhost", 8080, "", "port forwarding is not allowed"},
		{`restrict,port-forwarding,permitlisten="8080"`, "localhost", 8080, "localhost", ""},
	}
	for _, tt := range tests {
		bind, err := grantOf(t, tt.opts).CheckListen(tt.host, tt.port)
		switch {
		case tt.want == "" && (err != nil || bind != tt.bind):
			t.Errorf("[%s] CheckListen(%q, %d) = %q, %v; want %q, nil", tt.opts, tt.host, tt.port, bind, err, tt.bind)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("[%s] CheckListen(%q, %d) = %q, %v; want an error containing %q", tt.opts, tt.host, tt.port, bind, err, tt.want)
		}
	}
}

func TestCheckOpenStreamlocal(t *testing.T) {
	for opts, allowed := range map[string]bool{
		"":                         true,
		`permitopen="db:5432"`:     true, // permitopen is for TCP only, as sshd
		`permitlisten="8080"`:      true,
		`no-port-forwarding`:       false,
		`restrict`:                 false,
		`restrict,port-forwarding`: true,
		`no-agent-forwarding,no-pty,no-X11-forwarding`: true,
	} {
		err := grantOf(t, opts).CheckOpenStreamlocal("/run/user/1000/vscode-ipc.sock")
		if (err == nil) != allowed {
			t.Errorf("[%s] CheckOpenStreamlocal: %v, want allowed=%v", opts, err, allowed)
		}
		if err != nil && !strings.Contains(err.Error(), "port forwarding is not allowed for this key") {
			t.Errorf("[%s] CheckOpenStreamlocal: %v", opts, err)
		}
	}
}

// TestForwardingCertificates: a certificate's missing
// permit-port-forwarding extension refuses every forwarding; a
// cert-authority line's permitopen and permitlisten reach its
// certificates' grants.
func TestForwardingCertificates(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	ca, user := newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`cert-authority,permitopen="db.internal:5432",permitlisten="9000",session-mode="connection"`, ca.PublicKey()))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: file, Now: func() time.Time { return now }})

	full := signCert(t, ca, user.PublicKey(), now, nil)
	noFwd := signCert(t, ca, user.PublicKey(), now, func(c *gossh.Certificate) { delete(c.Extensions, extPortFwd) })

	ctx, _ := newCtx(t, "demo-app+conn", "192.0.2.1:4000")
	if !a.PublicKeyHandler(ctx, full) {
		t.Fatal("certificate refused")
	}
	g, _ := GrantFrom(ctx)
	if !g.Allowed || g.App != "demo-app" || !g.ConnectionModeByName || g.SessionMode != SessionModeConnection {
		t.Fatalf("grant %s", showGrant(g))
	}
	if err := g.CheckOpen("db.internal", 5432); err != nil {
		t.Errorf("permitopen of the cert-authority line: %v", err)
	}
	if err := g.CheckOpen("db.internal", 5433); err == nil {
		t.Error("db.internal:5433 allowed")
	}
	if bind, err := g.CheckListen("localhost", 9000); err != nil || bind != "localhost" {
		t.Errorf("permitlisten of the cert-authority line: %q, %v", bind, err)
	}
	if _, err := g.CheckListen("localhost", 9001); err == nil {
		t.Error("port 9001 allowed")
	}

	ctx, _ = newCtx(t, "demo-app+conn", "192.0.2.1:4000")
	if !a.PublicKeyHandler(ctx, noFwd) {
		t.Fatal("certificate without permit-port-forwarding refused")
	}
	g, _ = GrantFrom(ctx)
	if err := g.CheckOpen("localhost", 8080); err == nil || !strings.Contains(err.Error(), "permit-port-forwarding") {
		t.Errorf("CheckOpen: %v", err)
	}
	if _, err := g.CheckListen("localhost", 9000); err == nil {
		t.Error("CheckListen allowed")
	}
	if err := g.CheckOpenStreamlocal("/tmp/s"); err == nil {
		t.Error("CheckOpenStreamlocal allowed")
	}
}

// TestUserNameConnectionMode: the app of "APP+conn" is APP for apps=,
// certificate principals and the app name check; the audit line has the
// user name as sent and the app.
func TestUserNameConnectionMode(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	k, ca, certKey := newKey(t), newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`apps="demo-*"`, k.PublicKey())+authLine(`cert-authority`, ca.PublicKey()))
	a, logs := newAuthority(t, Config{AuthorizedKeysFile: file, Now: func() time.Time { return now }})
	cert := signCert(t, ca, certKey.PublicKey(), now, nil) // principal demo-app

	tests := []struct {
		user    string
		key     gossh.PublicKey
		allowed bool
		app     string
		byName  bool
	}{
		{"demo-app+conn", k.PublicKey(), true, "demo-app", true},
		{"demo-app", k.PublicKey(), true, "demo-app", false},
		{"other+conn", k.PublicKey(), false, "other", true},
		{"demo-app+x", k.PublicKey(), false, "demo-app+x", false}, // apps= allows it; no app name
		{"demo-app+CONN", k.PublicKey(), false, "demo-app+CONN", false},
		{"demo-+conn", k.PublicKey(), true, "demo-", true},
		{"demo-app+conn", cert, true, "demo-app", true},
		{"demo-app", cert, true, "demo-app", false},
		{"other+conn", cert, false, "other", true},
	}
	for _, tt := range tests {
		ctx, _ := newCtx(t, tt.user, "192.0.2.1:4000")
		if !a.PublicKeyHandler(ctx, tt.key) {
			t.Errorf("%s: refused", tt.user)
			continue
		}
		g, _ := GrantFrom(ctx)
		if g.Allowed != tt.allowed || g.App != tt.app || g.ConnectionModeByName != tt.byName {
			t.Errorf("%s: Allowed %v App %q ConnectionModeByName %v; want %v %q %v",
				tt.user, g.Allowed, g.App, g.ConnectionModeByName, tt.allowed, tt.app, tt.byName)
		}
	}
	if !strings.Contains(logs.String(), "user=demo-app+conn app=demo-app ") {
		t.Errorf("no audit line with the user name and its app:\n%s", logs)
	}
}

// TestConnectionModeOverSSH goes through the real entry: a key file with
// the new options, loaded by New as the bridge loads it, and a real SSH
// handshake for "demo-app+conn"; the grant the session sees carries the
// options and its checks apply them.
func TestConnectionModeOverSSH(t *testing.T) {
	dir := t.TempDir()
	k, other := newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`apps="demo-*",session-mode="connection",permitopen="db.internal:5432",permitlisten="localhost:8080"`, k.PublicKey())+
			authLine(`restrict,session-mode="session"`, other.PublicKey()))
	a, logs := newAuthority(t, Config{AuthorizedKeysFile: file})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grants := make(chan *Grant, 1)
	srv := &ssh.Server{
		Handler: func(s ssh.Session) {
			g, _ := GrantFrom(s.Context())
			grants <- g
		},
		PublicKeyHandler: a.PublicKeyHandler,
		ServerConfigCallback: func(ctx ssh.Context) *gossh.ServerConfig {
			return &gossh.ServerConfig{MaxAuthTries: MaxAuthTries, VerifiedPublicKeyCallback: a.VerifiedPublicKeyCallback(ctx)}
		},
	}
	srv.AddHostKey(newKey(t))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})

	grantFor := func(user string, key gossh.Signer) *Grant {
		t.Helper()
		c, err := dial(l.Addr().String(), user, "", gossh.PublicKeys(key))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		run(t, c)
		select {
		case g := <-grants:
			if g == nil {
				t.Fatal("no grant in the session")
			}
			return g
		case <-time.After(10 * time.Second):
			t.Fatal("the session never ran")
			return nil
		}
	}

	g := grantFor("demo-app+conn", k)
	if !g.Allowed || g.App != "demo-app" || !g.ConnectionModeByName || g.SessionMode != SessionModeConnection {
		t.Fatalf("grant %s", showGrant(g))
	}
	if err := g.CheckOpen("localhost", 3000); err != nil {
		t.Error(err)
	}
	if err := g.CheckOpen("db.internal", 5432); err != nil {
		t.Error(err)
	}
	if err := g.CheckOpen("db.internal", 22); err == nil || !strings.Contains(err.Error(), "db.internal:22 is not allowed") {
		t.Errorf("CheckOpen(db.internal, 22): %v", err)
	}
	if bind, err := g.CheckListen("localhost", 8080); err != nil || bind != "localhost" {
		t.Errorf("CheckListen(localhost, 8080) = %q, %v", bind, err)
	}
	if _, err := g.CheckListen("localhost", 8081); err == nil {
		t.Error("CheckListen(localhost, 8081) allowed")
	}
	if err := g.CheckOpenStreamlocal("/tmp/vscode.sock"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "msg=\"auth verified\" remote=") || !strings.Contains(logs.String(), "user=demo-app+conn app=demo-app") {
		t.Errorf("log:\n%s", logs)
	}

	g = grantFor("demo-app", other)
	if !g.Allowed || g.App != "demo-app" || g.ConnectionModeByName || g.SessionMode != SessionModeSession || !g.NoPTY {
		t.Fatalf("grant %s", showGrant(g))
	}
	if err := g.CheckOpen("localhost", 3000); err == nil {
		t.Error("restrict: CheckOpen allowed")
	}
}

// showGrant prints the fields these tests check (a Grant's %+v holds the
// key's bytes).
func showGrant(g *Grant) string {
	return fmt.Sprintf("Allowed=%v App=%q ConnectionModeByName=%v SessionMode=%q NoPTY=%v NoPortForwarding=%v PermitOpen=%q PermitListen=%q",
		g.Allowed, g.App, g.ConnectionModeByName, g.SessionMode, g.NoPTY, g.NoPortForwarding, g.PermitOpen, g.PermitListen)
}

// FuzzForwardingChecks: any permit value that loads, any request: no
// panic; a non-loopback target is reached only through a permitopen
// entry; with permitlisten entries a listener needs one; no-port-forwarding
// refuses all.
func FuzzForwardingChecks(f *testing.F) {
	f.Add("db:5432", "8080", "db", "localhost", uint32(5432), false)
	f.Add("[::1]:*", "*.x:*", "::1", "a.x", uint32(0), false)
	f.Add("*:*", "*:1", "", "*", uint32(70000), true)
	f.Fuzz(func(t *testing.T, open, listen, host, lhost string, port uint32, noFwd bool) {
		o, err := parseOptions(`permitopen="`+strings.ReplaceAll(open, `"`, ``)+`",permitlisten="`+strings.ReplaceAll(listen, `"`, ``)+`"`, time.UTC)
		if err != nil {
			return
		}
		o.noPortFwd = noFwd
		g := o.grant("demo-app", "id", "fp", "fuzz:1")
		openErr := g.CheckOpen(host, port)
		bind, listenErr := g.CheckListen(lhost, port)
		streamErr := g.CheckOpenStreamlocal(host)
		if noFwd {
			if openErr == nil || listenErr == nil || streamErr == nil {
				t.Fatalf("no-port-forwarding allowed something: %v %v %v", openErr, listenErr, streamErr)
			}
			return
		}
		if streamErr != nil {
			t.Fatalf("streamlocal refused: %v", streamErr)
		}
		if openErr == nil && !isLoopbackHost(host) {
			p, _ := parsePermit(g.PermitOpen[0], false)
			if p.host != "*" && !strings.EqualFold(p.host, host) {
				t.Fatalf("CheckOpen(%q, %d) allowed by %q", host, port, g.PermitOpen)
			}
		}
		if listenErr == nil && bind != "localhost" && bind != "127.0.0.1" && bind != "::1" && bind != strings.TrimSuffix(lhost, "*") {
			t.Fatalf("CheckListen(%q, %d) binds %q", lhost, port, bind)
		}
	})
}

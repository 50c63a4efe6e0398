package auth

import (
	"strings"
	"testing"

	"github.com/gliderlabs/ssh"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// outcome is what the handler did with one attempt.
type outcome int

const (
	refused outcome = iota
	denied          // authenticated, Allowed=false
	allowed
)

func (o outcome) String() string { return [...]string{"refused", "denied", "allowed"}[o] }

// fakeConn stands for the connection gliderlabs stores in the context
// once authentication succeeded.
type fakeConn struct{ gossh.Conn }

func authenticated(ctx *fakeCtx) { ctx.SetValue(ssh.ContextKeyConn, fakeConn{}) }

func attempt(t *testing.T, a *Authority, app, remote string, key gossh.PublicKey) (outcome, *Grant) {
	t.Helper()
	ctx, _ := newCtx(t, app, remote)
	ok := a.PublicKeyHandler(ctx, key)
	if ok {
		authenticated(ctx)
	}
	g, hasGrant := GrantFrom(ctx)
	switch {
	case !ok && hasGrant:
		t.Fatal("refused key left a grant")
	case !ok:
		return refused, nil
	case !hasGrant:
		t.Fatal("accepted key without a grant")
	case g.App != app:
		t.Fatalf("grant for app %q, want %q", g.App, app)
	case !g.Allowed:
		return denied, g
	}
	return allowed, g
}

func TestDecidePlainKeys(t *testing.T) {
	dir := t.TempDir()
	clock := &testClock{t: time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)}
	any, demo, fromNet, expired, future, multi, unknown := newKey(t), newKey(t), newKey(t), newKey(t), newKey(t), newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine("", any.PublicKey())+
			authLine(`apps="demo-*,!demo-secret"`, demo.PublicKey())+
			authLine(`from="10.0.0.0/8,!10.6.6.6"`, fromNet.PublicKey())+
			authLine(`expiry-time="20300601Z"`, expired.PublicKey())+
			authLine(`expiry-time="203006011201Z"`, future.PublicKey())+
			// The first line that authorizes the key for the app wins; a
			// line whose from= does not match is skipped.
			authLine(`from="192.0.2.0/24",command="first"`, multi.PublicKey())+
			authLine(`apps="demo-*",command="second"`, multi.PublicKey())+
			authLine(`apps="other",command="third"`, multi.PublicKey()))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: file, Now: clock.Now})

	tests := []struct {
		name   string
		key    gossh.Signer
		app    string
		remote string
		want   outcome
		cmd    string
	}{
		{"plain key, any app", any, "whatever", "127.0.0.1:1", allowed, ""},
		{"apps glob", demo, "demo-app", "127.0.0.1:1", allowed, ""},
		{"apps glob, other app", demo, "other-app", "127.0.0.1:1", denied, ""},
		{"apps negation", demo, "demo-secret", "127.0.0.1:1", denied, ""},
		{"from outside", fromNet, "app", "127.0.0.1:1", refused, ""},
		{"from inside", fromNet, "app", "10.1.2.3:1", allowed, ""},
		{"from negated", fromNet, "app", "10.6.6.6:1", refused, ""},
		{"from IPv4-mapped", fromNet, "app", "[::ffff:10.1.2.3]:1", allowed, ""},
		{"expired at the second", expired, "app", "127.0.0.1:1", refused, ""},
		{"not yet expired", future, "app", "127.0.0.1:1", allowed, ""},
		{"first line from matches", multi, "demo-x", "192.0.2.7:1", allowed, "first"},
		{"second line", multi, "demo-x", "127.0.0.1:1", allowed, "second"},
		{"third line", multi, "other", "127.0.0.1:1", allowed, "third"},
		{"no line allows the app", multi, "nope", "127.0.0.1:1", denied, ""},
		{"unknown key", unknown, "app", "127.0.0.1:1", refused, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, g := attempt(t, a, tt.app, tt.remote, tt.key.PublicKey())
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if got == allowed && g.ForceCommand != tt.cmd {
				t.Fatalf("command %q, want %q", g.ForceCommand, tt.cmd)
			}
			if got != refused && g.Fingerprint != gossh.FingerprintSHA256(tt.key.PublicKey()) {
				t.Fatalf("fingerprint %s", g.Fingerprint)
			}
		})
	}

	// Time passes: the second key expires too.
	clock.Add(time.Minute)
	if got, _ := attempt(t, a, "app", "127.0.0.1:1", future.PublicKey()); got != refused {
		t.Fatalf("expired key: %v", got)
	}
}

func TestGrantOptions(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`restrict,pty,command="rake db:migrate",environment="RAILS_ENV=production",environment="X=a b",permitopen="localhost:5432"`, k.PublicKey()))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: file})
	got, g := attempt(t, a, "app", "127.0.0.1:1", k.PublicKey())
	if got != allowed {
		t.Fatal(got)
	}
	if g.ForceCommand != "rake db:migrate" || g.Env["RAILS_ENV"] != "production" || g.Env["X"] != "a b" || len(g.Env) != 2 {
		t.Fatalf("grant %+v", g)
	}
	if g.NoPTY || !g.NoPortForwarding || !g.NoAgentForwarding || !g.NoX11Forwarding {
		t.Fatalf("restrictions %+v", g)
	}
	if len(g.PermitOpen) != 1 || g.Identity != g.Fingerprint || g.Source != file+":1" {
		t.Fatalf("grant %+v", g)
	}
	// Each connection gets its own copy.
	g.Env["RAILS_ENV"] = "changed"
	_, g2 := attempt(t, a, "app", "127.0.0.1:1", k.PublicKey())
	if g2.Env["RAILS_ENV"] != "production" {
		t.Fatal("grants share their environment map")
	}
}

func TestAppNameChecked(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine(`apps="demo-*,!demo-secret"`, k.PublicKey()))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: file})
	for app, want := range map[string]outcome{
		"demo-app":                         allowed,
		"demo-a.b_c":                       denied,
		"Demo-App":                         denied,
		"demo-":                            allowed,
		"demo-[s]ecret":                    denied, // would dodge !demo-secret
		"demo-*":                           denied,
		"demo-x/../y":                      denied,
		"demo-\x00":                        denied,
		"demo-" + strings.Repeat("x", 100): denied,
	} {
		if got, _ := attempt(t, a, app, "127.0.0.1:1", k.PublicKey()); got != want {
			t.Errorf("app %q: %v, want %v", app, got, want)
		}
	}
}

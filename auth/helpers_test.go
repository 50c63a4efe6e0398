package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/internal/testkit"
)

// fakeCtx is an ssh.Context for calling the handler directly.
type fakeCtx struct {
	context.Context
	sync.Mutex
	user   string
	remote net.Addr

	mu     sync.Mutex
	values map[any]any
	perms  ssh.Permissions
}

func newCtx(t *testing.T, user, remote string) (*fakeCtx, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCtx{Context: ctx, user: user, remote: addr, values: map[any]any{}, perms: ssh.Permissions{Permissions: &gossh.Permissions{}}}, cancel
}

func (c *fakeCtx) Value(k any) any {
	c.mu.Lock()
	v, ok := c.values[k]
	c.mu.Unlock()
	if ok {
		return v
	}
	return c.Context.Value(k)
}

func (c *fakeCtx) SetValue(k, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[k] = v
}

func (c *fakeCtx) User() string          { return c.user }
func (c *fakeCtx) SessionID() string     { return "0" }
func (c *fakeCtx) ClientVersion() string { return "SSH-2.0-test" }
func (c *fakeCtx) ServerVersion() string { return "SSH-2.0-test" }
func (c *fakeCtx) RemoteAddr() net.Addr  { return c.remote }
func (c *fakeCtx) LocalAddr() net.Addr   { return c.remote }
func (c *fakeCtx) Permissions() *ssh.Permissions {
	return &c.perms
}

var _ ssh.Context = (*fakeCtx)(nil)

// newKey makes an ed25519 signer.
func newKey(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authLine is an authorized_keys line for key with options.
func authLine(opts string, key gossh.PublicKey) string {
	l := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	if opts != "" {
		l = opts + " " + l
	}
	return l + " test@example\n"
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is the test kit's buffer, safe for concurrent writers and
// readers.
type syncBuffer = testkit.Buffer

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newAuthority(t testing.TB, cfg Config) (*Authority, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, buf
}

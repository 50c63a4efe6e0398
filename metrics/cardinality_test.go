package metrics

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
	"sshbridge/bridge"
	"sshbridge/oneoff"
)

// A platform whose one-offs print "ok" and exit 0.
type okPlatform struct{}

func (okPlatform) Start(context.Context, oneoff.RunRequest) (bridge.OneOff, error) {
	return okOneOff{}, nil
}

type okOneOff struct{}

func (okOneOff) ContainerID() string                                    { return "c" }
func (okOneOff) PipeMode() bool                                         { return true }
func (okOneOff) Upload(context.Context, string, int64, io.Reader) error { return nil }
func (okOneOff) Resize(context.Context, int, int) error                 { return nil }
func (okOneOff) Wait(context.Context) (int, error)                      { return 0, nil }
func (okOneOff) Attach(context.Context) (bridge.Stream, error) {
	return &okStream{Reader: strings.NewReader("ok\n")}, nil
}

type okStream struct{ io.Reader }

func (*okStream) Write(p []byte) (int, error) { return len(p), nil }
func (*okStream) Close() error                { return nil }
func (*okStream) CloseWrite() error           { return nil }

// series counts the bridge's own series (the Go runtime's and the
// process's left out), and returns one's value.
func series(t *testing.T, m *Metrics) (int, func(name string, labels ...string) float64) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), namespace+"_") {
			n += len(f.GetMetric())
			byName[f.GetName()] = f
		}
	}
	return n, func(name string, labels ...string) float64 {
		f := byName[name]
		if f == nil {
			t.Fatalf("no metric %s", name)
		}
	next:
		for _, mt := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range mt.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no series %s%v", name, labels)
		return 0
	}
}

// TestSeriesDoNotGrowWithKeysAndApps opens sessions from 100 keys to 50
// apps, through a real SSH server and access control: the number of
// series after the first is the number after the last.
func TestSeriesDoNotGrowWithKeysAndApps(t *testing.T) {
	const keys, apps = 100, 50
	dir := t.TempDir()
	var lines []string
	signers := make([]gossh.Signer, keys)
	for i := range signers {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if signers[i], err = gossh.NewSignerFromKey(priv); err != nil {
			t.Fatal(err)
		}
		sshPub, _ := gossh.NewPublicKey(pub)
		lines = append(lines, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub))))
	}
	akFile := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(akFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authority, err := auth.New(auth.Config{AuthorizedKeysFile: akFile})
	if err != nil {
		t.Fatal(err)
	}
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := gossh.NewSignerFromKey(hostPriv)
	m := New("test", func() (int, int64) { return 0, 0 })
	srv, err := bridge.New(bridge.Config{}, bridge.Deps{Platform: okPlatform{}, Auth: authority, HostKey: hostKey, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	session := func(i int) {
		t.Helper()
		c, err := gossh.Dial("tcp", ln.Addr().String(), &gossh.ClientConfig{
			User:            fmt.Sprintf("app-%d", i%apps),
			Auth:            []gossh.AuthMethod{gossh.PublicKeys(signers[i])},
			HostKeyCallback: gossh.FixedHostKey(hostKey.PublicKey()),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Output("true")
		if err != nil || string(out) != "ok\n" {
			t.Fatalf("session %d: %q %v", i, out, err)
		}
	}
	// settled waits until every connection so far has been counted closed.
	settled := func(closed int) (int, func(string, ...string) float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, value := series(t, m)
			if value("sshbridge_connections_total", "outcome", "authenticated") == float64(closed) {
				return n, value
			}
			if time.Now().After(deadline) {
				t.Fatalf("connections closed: %v, want %d", value("sshbridge_connections_total", "outcome", "authenticated"), closed)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	session(0)
	first, _ := settled(1)
	for i := 1; i < keys; i++ {
		session(i)
	}
	last, value := settled(keys)
	if first != last {
		t.Fatalf("%d series after the first session, %d after %d sessions of %d keys to %d apps", first, last, keys, keys, apps)
	}
	if got := value("sshbridge_sessions_total", "kind", "exec", "outcome", "command"); got != keys {
		t.Fatalf("sessions counted: %v, want %d", got, keys)
	}
	if got := value("sshbridge_authentications_total", "result", "ok", "reason", ""); got != keys {
		t.Fatalf("authentications counted: %v, want %d", got, keys)
	}
	if got := value("sshbridge_oneoff_start_seconds", "phase", "first_byte"); got != keys {
		t.Fatalf("first bytes observed: %v, want %d", got, keys)
	}
	t.Logf("%d series, unchanged from the first session to the %dth", last, keys)
}

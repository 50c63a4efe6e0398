package oneoff_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"sshbridge/internal/testkit"
	"sshbridge/oneoff"
	"sshbridge/platform"
)

// The conformance suite runs the client against a server of the one-off
// API over real HTTP: what the bridge relies on, end to end. Each case
// built with eachBackend runs against two backends, as subtests:
//
//   - "embedded": the embedded platform on a loopback port, always (CI
//     runs it on every change);
//   - "external": any other server of the API, a PaaS, named by
//     ONEOFF_CONFORMANCE_API_URL, ONEOFF_CONFORMANCE_AUTH_URL (the token
//     exchange; default the API URL), ONEOFF_CONFORMANCE_API_TOKEN and
//     ONEOFF_CONFORMANCE_APP (an app the token may run one-offs of). It is
//     skipped when ONEOFF_CONFORMANCE_API_URL is unset: this optional
//     backend is the only thing the suite ever skips.
//
// Pipe mode is an extension (PROTOCOL.md section 4): a case that needs it
// is skipped on the external backend when that backend does not echo
// "tty": false, and fails on the embedded platform, which must grant it.
// Cases that set the platform up (the app's environment, quotas, the
// inactivity timeout) run on the embedded platform only and say so.

func TestMain(m *testing.M) {
	platform.RunInitIfRequested() // one-offs re-execute this test binary as their init
	os.Exit(m.Run())
}

const apiToken = "tk-us-conformance"

// The environment that names an external backend.
const (
	envAPIURL  = "ONEOFF_CONFORMANCE_API_URL"
	envAuthURL = "ONEOFF_CONFORMANCE_AUTH_URL"
	envToken   = "ONEOFF_CONFORMANCE_API_TOKEN"
	envApp     = "ONEOFF_CONFORMANCE_APP"
)

// servePlatform starts an embedded platform on a loopback port and returns
// its base URL; it is shut down when the test ends.
func servePlatform(t *testing.T, mod func(*platform.Config)) string {
	t.Helper()
	cfg := platform.Config{APIToken: apiToken}
	if mod != nil {
		mod(&cfg)
	}
	p, err := platform.New(cfg)
	if err != nil {
		t.Fatalf("platform.New: %v", err)
	}
	return "http://" + testkit.Serve(t, p)
}

func newClient(t *testing.T, url, token string) *oneoff.Client {
	t.Helper()
	return newClientAuth(t, url, "", token)
}

func newClientAuth(t *testing.T, url, authURL, token string) *oneoff.Client {
	t.Helper()
	c, err := oneoff.New(oneoff.Config{APIURL: url, AuthURL: authURL, APIToken: token, StartTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("oneoff.New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// backend is a server of the API the suite runs against: a client of it,
// the app whose one-offs the cases run, and whether it is the embedded
// platform (which must grant every extension).
type backend struct {
	*oneoff.Client
	app      string
	embedded bool
}

// platformClient is the backend of a fresh embedded platform, set up by
// mod (nil: defaults).
func platformClient(t *testing.T, mod func(*platform.Config)) backend {
	return backend{Client: newClient(t, servePlatform(t, mod), apiToken), app: "demo", embedded: true}
}

// externalBackend is the backend the environment names; it skips the test
// when ONEOFF_CONFORMANCE_API_URL is unset, and fails it when the URL is
// set without a token or an app.
func externalBackend(t *testing.T) backend {
	t.Helper()
	url := os.Getenv(envAPIURL)
	if url == "" {
		t.Skipf("%s is unset: no external backend to check (the embedded platform is checked always)", envAPIURL)
	}
	token, app := os.Getenv(envToken), os.Getenv(envApp)
	if token == "" || app == "" {
		t.Fatalf("%s is set: set %s and %s too", envAPIURL, envToken, envApp)
	}
	return backend{Client: newClientAuth(t, url, os.Getenv(envAuthURL), token), app: app}
}

// eachBackend runs test against a fresh embedded platform and against the
// external backend, each as a subtest.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	t.Run("embedded", func(t *testing.T) { test(t, platformClient(t, nil)) })
	t.Run("external", func(t *testing.T) { test(t, externalBackend(t)) })
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustStart starts a one-off of b's app (req.App when set). A one-off asked
// in pipe mode and started in terminal mode fails the test on the embedded
// platform and skips it on another backend, for which pipe mode is an
// extension it may lack (PROTOCOL.md section 4).
func mustStart(t *testing.T, b backend, req oneoff.RunRequest) *oneoff.OneOff {
	t.Helper()
	if req.App == "" {
		req.App = b.app
	}
	o, err := b.Start(testCtx(t), req)
	if err != nil {
		t.Fatalf("Start(%q): %v", req.Command, err)
	}
	if !req.TTY && !o.PipeMode() {
		if !b.embedded {
			t.Skip("the backend does not echo \"tty\": false: no pipe mode (PROTOCOL.md section 4), which this case needs")
		}
		t.Fatalf("pipe mode asked, not granted")
	}
	return o
}

// session attaches, sends input and the end of input, reads all output and
// the exit code.
func session(t *testing.T, o *oneoff.OneOff, input []byte) ([]byte, int) {
	t.Helper()
	ctx := testCtx(t)
	s, err := o.Attach(ctx)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(input)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	out, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v (output so far %q)", err, out)
	}
	if err := <-werr; err != nil {
		t.Errorf("write: %v", err)
	}
	code, err := o.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return out, code
}

func runPipe(t *testing.T, b backend, command string) (string, int) {
	t.Helper()
	out, code := session(t, mustStart(t, b, oneoff.RunRequest{Command: command}), nil)
	return string(out), code
}

func TestConformanceOutputAndEnvironment(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) { outputAndEnvironment(t, c) })
}

// outputAndEnvironment checks pipe and terminal output and the run's
// environment; on the embedded platform, also the app's environment and
// that one-offs do not run as root, which only it can be set up for.
func outputAndEnvironment(t *testing.T, c backend) {
	if c.embedded {
		c = platformClient(t, func(cfg *platform.Config) { cfg.Env = map[string]string{"APP_VAR": "from app"} })
	}
	out, code := runPipe(t, c, "echo out; echo err >&2")
	if out != "out\nerr\n" || code != 0 {
		t.Errorf("pipe: %q, exit %d", out, code)
	}

	o := mustStart(t, c, oneoff.RunRequest{Command: `printf '%s|%s|%s' "$RUN_VAR" "$APP_VAR" "$(id -u)"`,
		Env: map[string]string{"RUN_VAR": "with 'quotes' and spaces"}})
	b, _ := session(t, o, nil)
	parts := strings.Split(string(b), "|")
	if len(parts) != 3 || parts[0] != "with 'quotes' and spaces" || c.embedded && parts[1] != "from app" {
		t.Errorf("environment: %q", b)
	}
	if c.embedded && len(parts) == 3 && parts[2] == "0" {
		t.Errorf("one-off runs as root")
	}

	o = mustStart(t, c, oneoff.RunRequest{Command: "echo term; tty", TTY: true})
	b, code = session(t, o, nil)
	if !strings.HasPrefix(string(b), "term\r\n/dev/") || code != 0 {
		t.Errorf("terminal: %q, exit %d", b, code)
	}
}

func TestConformanceExitCodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		for _, tc := range []struct {
			command string
			tty     bool
			want    int
		}{
			{"true", false, 0},
			{"exit 3", false, 3},
			{"exit 3", true, 3},
			{"no-such-command-anywhere", false, 127},
			{"kill -9 $$", false, 137},
			{"kill -9 $$", true, 137},
		} {
			t.Run(fmt.Sprintf("%s tty=%v", tc.command, tc.tty), func(t *testing.T) {
				_, code := session(t, mustStart(t, c, oneoff.RunRequest{Command: tc.command, TTY: tc.tty}), nil)
				if code != tc.want {
					t.Errorf("exit %d, want %d", code, tc.want)
				}
			})
		}
	})
}

func TestConformanceResize(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		o := mustStart(t, c, oneoff.RunRequest{Command: "read x; stty size", TTY: true})
		ctx := testCtx(t)
		s, err := o.Attach(ctx)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		defer s.Close()
		if err := o.Resize(ctx, 123, 45); err != nil {
			t.Fatalf("Resize: %v", err)
		}
		// stty runs only after the resize was answered.
		if _, err := s.Write([]byte("go\r")); err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(s)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !strings.Contains(string(out), "45 123") {
			t.Errorf("stty size after Resize(123, 45): %q", out)
		}
		if code, err := o.Wait(ctx); err != nil || code != 0 {
			t.Errorf("Wait = %d, %v", code, err)
		}
	})
}

func TestConformanceUploads(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		ctx := testCtx(t)
		// A name with spaces, quotes, a backslash and a non-ASCII letter
		// arrives as given.
		odd := `odd "name" \ é.txt`
		o := mustStart(t, c, oneoff.RunRequest{
			Command: `cat /tmp/uploads/hello.txt /tmp/uploads/dir/sub/data.bin | sha256sum; cat "/tmp/uploads/$ODD"`,
			Env:     map[string]string{"ODD": odd},
		})
		hello := "hello from the bridge\n"
		if err := o.Upload(ctx, "hello.txt", int64(len(hello)), strings.NewReader(hello)); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		data := make([]byte, 3<<20)
		rand.Read(data)
		if err := o.Upload(ctx, "dir/sub/data.bin", int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatalf("Upload with a subdirectory: %v", err)
		}
		if err := o.Upload(ctx, odd, 2, strings.NewReader("ok")); err != nil {
			t.Fatalf("Upload %q: %v", odd, err)
		}
		out, code := session(t, o, nil)
		want := fmt.Sprintf("%x  -\nok", sha256.Sum256(append([]byte(hello), data...)))
		if string(out) != want || code != 0 {
			t.Errorf("uploaded files read back: %q exit %d, want %q", out, code, want)
		}

		out2, _ := runPipe(t, c, "ls -A /tmp/uploads; test -e /tmp/uploads/hello.txt && echo present || echo absent")
		if out2 != "absent\n" {
			t.Errorf("another one-off sees: %q", out2)
		}
	})
}

func TestConformanceTerminalEOF(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		for _, command := range []string{"wc -c", "cat"} {
			t.Run(command, func(t *testing.T) {
				o := mustStart(t, c, oneoff.RunRequest{Command: command, TTY: true})
				out, code := session(t, o, []byte("abc\r"))
				if code != 0 {
					t.Errorf("exit %d", code)
				}
				want := "abc\r\n4\r\n" // the echo, then wc's count
				if command == "cat" {
					want = "abc\r\nabc\r\n" // the echo, then cat's copy
				}
				if string(out) != want {
					t.Errorf("output %q, want %q", out, want)
				}
			})
		}
	})
}

func TestConformancePipeBinaryRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		data := make([]byte, 10<<20)
		rand.Read(data)
		o := mustStart(t, c, oneoff.RunRequest{Command: "cat"})
		begin := time.Now()
		out, code := session(t, o, data)
		if sha256.Sum256(out) != sha256.Sum256(data) || code != 0 {
			t.Errorf("10 MiB through cat: %d bytes back, exit %d, hashes differ", len(out), code)
		}
		t.Logf("10 MiB round trip in %v", time.Since(begin))
	})
}

// Embedded platform only: it sets the platform's inactivity timeout.
func TestConformanceInactivity(t *testing.T) {
	c := platformClient(t, func(cfg *platform.Config) { cfg.InactivityTimeout = 300 * time.Millisecond })
	o := mustStart(t, c, oneoff.RunRequest{Command: "sleep 30"})
	ctx := testCtx(t)
	s, err := o.Attach(ctx)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	begin := time.Now()
	io.Copy(io.Discard, s)
	_, err = o.Wait(ctx)
	if !errors.Is(err, oneoff.ErrInactivity) {
		t.Fatalf("Wait: %v, want ErrInactivity", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("killed after %v, want about 300ms", took)
	}
}

// wantAPIError checks the kind and status of a refusal.
func wantAPIError(t *testing.T, what string, err error, kind error, status int) {
	t.Helper()
	var ae *oneoff.APIError
	if !errors.Is(err, kind) || !errors.As(err, &ae) {
		t.Errorf("%s: %v, want %v", what, err, kind)
		return
	}
	if status != 0 && ae.Status != status {
		t.Errorf("%s: status %d, want %d (%v)", what, ae.Status, status, err)
	}
	t.Logf("%s: %v", what, err)
}

// Embedded platform only: it sets the platform's apps, quotas and upload
// cap.
func TestConformanceRefusals(t *testing.T) {
	url := servePlatform(t, func(cfg *platform.Config) {
		cfg.Apps = []string{"demo", "other", "third"}
		cfg.AppQuota = 2
		cfg.TotalQuota = 3
		cfg.MaxUploadBytes = 1000
	})
	c := backend{Client: newClient(t, url, apiToken), app: "demo", embedded: true}
	ctx := testCtx(t)

	_, err := newClient(t, url, "tk-us-wrong").Start(ctx, oneoff.RunRequest{App: "demo", Command: "true"})
	wantAPIError(t, "bad token", err, oneoff.ErrUnauthorized, 401)

	_, err = c.Start(ctx, oneoff.RunRequest{App: "nope", Command: "true"})
	wantAPIError(t, "unknown app", err, oneoff.ErrAppNotFound, 404)

	_, err = c.Start(ctx, oneoff.RunRequest{App: "demo", Command: ""})
	wantAPIError(t, "missing command", err, oneoff.ErrInvalid, 422)
	if err != nil && !strings.Contains(err.Error(), "command") {
		t.Errorf("missing command: %q does not name the field", err)
	}

	// Upload refusals, then attach refusals, on one one-off (the first of
	// the quota).
	o := mustStart(t, c, oneoff.RunRequest{App: "demo", Command: "cat"})
	// Just over the cap (streamed, then refused), and far over it (refused
	// on its length while the client is still sending).
	for _, size := range []int{1001, 20 << 20} {
		err = o.Upload(ctx, "big.bin", int64(size), bytes.NewReader(make([]byte, size)))
		wantAPIError(t, fmt.Sprintf("upload of %d bytes over the size cap", size), err, oneoff.ErrUploadRefused, 413)
	}
	for _, name := range []string{"../escape", "/etc/passwd", "a/../../escape", "a//b", "./x/../../y", "a/\x00b"} {
		err = o.Upload(ctx, name, 2, strings.NewReader("hi"))
		wantAPIError(t, fmt.Sprintf("upload name %q", name), err, oneoff.ErrUploadRefused, 0)
	}
	s, err := o.Attach(ctx)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer s.Close()
	err = o.Upload(ctx, "late.txt", 2, strings.NewReader("hi"))
	wantAPIError(t, "upload after attach", err, oneoff.ErrUploadRefused, 0)
	_, err = o.Attach(ctx)
	wantAPIError(t, "second attach", err, oneoff.ErrAttachRefused, 0)

	// Quotas: 2 per app, 3 in all; o is alive. A 429 waits for a slot
	// until the start deadline, so the refusals are asked with a short one.
	short, err := oneoff.New(oneoff.Config{APIURL: url, APIToken: apiToken, StartTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer short.CloseIdleConnections()
	mustStart(t, c, oneoff.RunRequest{App: "demo", Command: "true"})
	_, err = short.Start(ctx, oneoff.RunRequest{App: "demo", Command: "true"})
	wantAPIError(t, "over the app quota", err, oneoff.ErrQuota, 0)
	mustStart(t, c, oneoff.RunRequest{App: "other", Command: "true"})
	_, err = short.Start(ctx, oneoff.RunRequest{App: "third", Command: "true"})
	wantAPIError(t, "over the total quota", err, oneoff.ErrQuota, 0)
}

func TestConformanceTerminalInterrupt(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		o := mustStart(t, c, oneoff.RunRequest{Command: "echo ready; sleep 30", TTY: true})
		ctx := testCtx(t)
		s, err := o.Attach(ctx)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		defer s.Close()
		buf := make([]byte, 64)
		if n, err := io.ReadAtLeast(s, buf, len("ready")); err != nil || !strings.HasPrefix(string(buf[:n]), "ready") {
			t.Fatalf("first output %q, %v", buf[:n], err)
		}
		// Ctrl-C, interpreted by the terminal. Again until the output ends, as a
		// user would: a shell may lose one that lands while it is starting
		// the next command.
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			io.Copy(io.Discard, s)
		}()
		for done := false; !done; {
			s.Write([]byte{0x03})
			select {
			case <-ended:
				done = true
			case <-time.After(200 * time.Millisecond):
			}
		}
		if code, err := o.Wait(ctx); err != nil || code != 130 {
			t.Errorf("Wait after Ctrl-C = %d, %v; want 130", code, err)
		}
	})
}

func TestConformanceClientGoneEndsOneOff(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		o := mustStart(t, c, oneoff.RunRequest{Command: "sleep 30"})
		ctx := testCtx(t)
		s, err := o.Attach(ctx)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		s.Close()
		begin := time.Now()
		code, err := o.Wait(ctx)
		if err != nil {
			t.Logf("Wait after the stream was closed: %v", err)
		} else if code == 0 {
			t.Errorf("Wait after the stream was closed = 0, want a kill")
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("one-off still alive %v after its stream closed", took)
		}
	})
}

func TestConformanceConcurrentSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, c backend) {
		const n = 6
		errs := make(chan error, n)
		for i := range n {
			go func() {
				ctx := testCtx(t)
				want := fmt.Sprintf("session %d", i)
				o, err := c.Start(ctx, oneoff.RunRequest{App: c.app, Command: `printf '%s' "$WHO"`, Env: map[string]string{"WHO": want}})
				if err != nil {
					errs <- err
					return
				}
				s, err := o.Attach(ctx)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				s.CloseWrite()
				out, err := io.ReadAll(s)
				if err == nil && string(out) != want {
					err = fmt.Errorf("session %d got %q", i, out)
				}
				if err == nil {
					_, err = o.Wait(ctx)
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

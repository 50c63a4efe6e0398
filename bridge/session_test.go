package bridge

import (
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/oneoff"
)

// Exec sessions through the fake backend: what the platform is asked, what
// the client gets, and the refusals decided before any one-off.
func TestExec(t *testing.T) {
	for _, tc := range []struct {
		name, opts, app, command, stdin string
		setup                           func(*gossh.Session)
		want                            result
		wantReq                         *oneoff.RunRequest // nil: no one-off started
	}{
		{name: "echo", app: "demo", command: "cat", stdin: "hello",
			want:    result{stdout: "hello"},
			wantReq: &oneoff.RunRequest{App: "demo", Command: "cat", Env: map[string]string{}}},
		{name: "env", app: "demo", command: "env",
			setup: func(s *gossh.Session) {
				s.Setenv("LANG", "C.UTF-8")
				s.Setenv("SECRET", "x") // not allowed: refused, not passed
			},
			wantReq: &oneoff.RunRequest{App: "demo", Command: "env", Env: map[string]string{"LANG": "C.UTF-8"}}},
		{name: "forced command", opts: `command="echo forced",environment="K=v"`, app: "demo", command: "ls -l",
			wantReq: &oneoff.RunRequest{App: "demo", Command: "echo forced", Env: map[string]string{"SSH_ORIGINAL_COMMAND": "ls -l", "K": "v"}}},
		{name: "blank command", app: "demo", command: " \t"},
		{name: "rsync upload", app: "demo", command: "rsync --server -logDtpre.iLsfxCIvu . /tmp/x",
			want: result{stderr: rsyncUploadMessage + "\n", code: ExitRsyncUpload}},
		{name: "invalid app name", app: "Bad_App", command: "true",
			want: result{stderr: invalidAppNameMessage("Bad_App") + "\n", code: ExitInvalidAppName}},
		{name: "app not allowed", opts: `apps="other"`, app: "demo", command: "true",
			want: result{stderr: `This key may not use app "demo".` + "\n", code: ExitAccessDenied}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePlatform{}
			b := startBridge(t, Config{}, p, nil, tc.opts)
			if got := b.run(t, tc.app, tc.command, tc.stdin, tc.setup); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			reqs := p.requests()
			switch {
			case tc.wantReq == nil && len(reqs) != 0:
				t.Errorf("one-offs started: %+v", reqs)
			case tc.wantReq == nil:
			case len(reqs) != 1:
				t.Errorf("%d one-offs started, want 1", len(reqs))
			default:
				got := reqs[0]
				if got.App != tc.wantReq.App || got.Command != tc.wantReq.Command || got.TTY || !maps.Equal(got.Env, tc.wantReq.Env) {
					t.Errorf("run request %+v, want %+v", got, *tc.wantReq)
				}
			}
		})
	}
}

// Each way the backend fails ends the session with its exit code and one
// line on stderr, which never carries the raw error.
func TestFailureKinds(t *testing.T) {
	apiErr := func(kind error, msg string) error { return &oneoff.APIError{Op: "run", Kind: kind, Message: msg} }
	for _, tc := range []struct {
		name     string
		start    error
		oneOff   *fakeOneOff
		wantCode int
		wantLine string
	}{
		{"app not found", apiErr(oneoff.ErrAppNotFound, ""), nil, ExitAppNotFound, `App "demo" was not found on the platform.`},
		{"quota", apiErr(oneoff.ErrQuota, ""), nil, ExitQuota, "The platform refused to start another one-off container for demo (quota or rate limit); try again later."},
		{"invalid", apiErr(oneoff.ErrInvalid, ""), nil, ExitRequestRefused, "The platform refused the run request as invalid."},
		{"operation failed", apiErr(oneoff.ErrOperationFailed, "no\ncapacity"), nil, ExitStartFailed, "The one-off container failed to start: no capacity"},
		{"operation timeout", apiErr(oneoff.ErrStartTimeout, ""), nil, ExitStartFailed, "The one-off container did not start in time."},
		{"unauthorized", apiErr(oneoff.ErrUnauthorized, ""), nil, ExitPlatformDown, "The bridge could not authenticate to the platform; tell its operator."},
		{"unreachable", apiErr(oneoff.ErrUnreachable, "http://secret"), nil, ExitPlatformDown, "The platform is unavailable; try again later."},
		{"malformed", apiErr(oneoff.ErrMalformed, ""), nil, ExitPlatformDown, "The platform is unavailable; try again later."},
		{"other", errors.New("token=secret"), nil, ExitInternal, "The bridge failed to run the session; the cause is in its log."},
		{"attach refused", nil, &fakeOneOff{prog: echo(0), attachErr: apiErr(oneoff.ErrAttachRefused, "")}, ExitPlatformDown, "The platform is unavailable; try again later."},
		{"inactivity", nil, &fakeOneOff{prog: echo(0), waitErr: apiErr(oneoff.ErrInactivity, "")}, ExitInactivity, "The platform stopped the one-off container after a period of inactivity."},
		{"wait unreachable", nil, &fakeOneOff{prog: echo(0), waitErr: apiErr(oneoff.ErrUnreachable, "")}, ExitPlatformDown, "The platform is unavailable; try again later."},
		{"exit code lost", nil, &fakeOneOff{prog: echo(0), waitBlock: true}, ExitPlatformLostExit, "The command's exit code could not be read from the platform."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePlatform{err: tc.start}
			if tc.oneOff != nil {
				p.oneOff = func() *fakeOneOff { return tc.oneOff }
			}
			b := startBridge(t, Config{WaitTimeout: 50 * time.Millisecond}, p, nil, "")
			got := b.run(t, "demo", "cmd", "", nil)
			want := result{stderr: tc.wantLine + "\n", code: tc.wantCode}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// A bug in a session is the internal-error line and code, and the bridge
// goes on serving.
func TestPanicInSession(t *testing.T) {
	p := &fakePlatform{oneOff: func() *fakeOneOff { panic("bug") }}
	b := startBridge(t, Config{}, p, nil, "")
	want := result{stderr: "The bridge failed to run the session; the cause is in its log.\n", code: ExitInternal}
	if got := b.run(t, "demo", "cmd", "", nil); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	p.oneOff = nil
	if got := b.run(t, "demo", "cat", "again", nil); got != (result{stdout: "again"}) {
		t.Errorf("after the panic: %+v", got)
	}
}

// startShell opens a shell session with a terminal of cols x rows.
func startShell(t *testing.T, b *testBridge, cols, rows int) (*gossh.Session, io.WriteCloser, io.Reader, io.Reader) {
	t.Helper()
	s, err := b.dial(t, "demo").NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.RequestPty("xterm", rows, cols, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	errOut, _ := s.StderrPipe()
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	return s, in, out, errOut
}

// readUntil reads r until what it read ends with suffix.
func readUntil(t *testing.T, r io.Reader, suffix string) string {
	t.Helper()
	var got []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(got), suffix) {
		if _, err := r.Read(b); err != nil {
			t.Fatalf("read %q, then %v; want it to end with %q", got, err, suffix)
		}
		got = append(got, b[0])
	}
	return string(got)
}

// A shell with a terminal: the default command on a terminal with TERM,
// the size sent before attach and on each window change, signals as the
// terminal's control bytes, progress lines on stderr.
func TestShellWithPty(t *testing.T) {
	resized := make(chan string, 8)
	var o *fakeOneOff
	p := &fakePlatform{waiting: true, oneOff: func() *fakeOneOff {
		o = &fakeOneOff{resized: resized, prog: func(in io.Reader, out io.Writer) int {
			b := make([]byte, 1)
			for {
				if _, err := in.Read(b); err != nil {
					return 1
				}
				if b[0] == 0x03 {
					return 130
				}
				out.Write(b)
			}
		}}
		return o
	}}
	b := startBridge(t, Config{}, p, nil, "")
	s, in, out, errOut := startShell(t, b, 100, 40)
	progress := readUntil(t, errOut, " s\r\n")
	if want := "Starting one-off container for demo... busy\r\nWaiting for a free one-off slot for demo... done in "; !strings.HasPrefix(progress, want) {
		t.Errorf("progress %q, want it to start with %q", progress, want)
	}
	io.WriteString(in, "hi")
	readUntil(t, out, "hi")
	if err := s.WindowChange(50, 120); err != nil {
		t.Fatal(err)
	}
	// The signal would end the command before the window change reached
	// it: wait for the resize first.
	for e := ""; e != "resize 120x50"; {
		select {
		case e = <-resized:
		case <-time.After(5 * time.Second):
			t.Fatal("no resize to 120x50")
		}
	}
	if err := s.Signal(gossh.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, s.Wait()); code != 130 {
		t.Errorf("exit code %d, want 130", code)
	}
	if got, want := o.log(), []string{"resize 100x40", "attach", "resize 120x50"}; !slices.Equal(got, want) {
		t.Errorf("one-off saw %q, want %q", got, want)
	}
	req := p.requests()[0]
	if req.Command != "bash" || !req.TTY || req.Env["TERM"] != "xterm" {
		t.Errorf("run request %+v, want bash on a terminal with TERM=xterm", req)
	}
}

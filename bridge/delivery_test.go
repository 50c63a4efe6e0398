package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/oneoff"
)

// fakeUploads is a staging area of fixed pending files: an interceptor
// answering "scp", the "sftp" subsystem (failing with sftpErr) and a
// deliverer.
type fakeUploads struct {
	files   []string // name=content
	readErr error    // Deliver fails reading the first file with it
	sftpErr error

	mu      sync.Mutex
	outcome string // "committed" or "released"
}

func (u *fakeUploads) ServeSFTP(ctx context.Context, user, app string, ch io.ReadWriteCloser, stderr io.Writer) error {
	fmt.Fprintf(ch, "sftp for %s", app)
	return u.sftpErr
}

func (u *fakeUploads) Intercept(command string) ExecHandler {
	if !strings.HasPrefix(command, "scp ") {
		return nil
	}
	return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) (int, error) {
		fmt.Fprintf(rw, "scp for %s", app)
		return 4, nil
	}
}

type pendingError struct {
	error
	files []string
}

func (e pendingError) Unwrap() error          { return e.error }
func (e pendingError) StillPending() []string { return e.files }

func (u *fakeUploads) Deliver(ctx context.Context, user, app string,
	send func(ctx context.Context, name string, size int64, r io.Reader) error,
	progress func(name string, sent, size int64, accepted bool)) (Delivery, error) {
	var names []string
	for _, f := range u.files {
		names = append(names, strings.SplitN(f, "=", 2)[0])
	}
	if u.readErr != nil {
		return nil, pendingError{u.readErr, names}
	}
	for _, f := range u.files {
		name, content, _ := strings.Cut(f, "=")
		if progress != nil {
			progress(name, 0, int64(len(content)), false)
		}
		if err := send(ctx, name, int64(len(content)), strings.NewReader(content)); err != nil {
			return nil, pendingError{err, names}
		}
		if progress != nil {
			progress(name, int64(len(content)), int64(len(content)), true)
		}
	}
	return &fakeDelivery{u, names}, nil
}

type fakeDelivery struct {
	u     *fakeUploads
	names []string
}

func (d *fakeDelivery) Files() []string { return d.names }
func (d *fakeDelivery) Commit() error   { d.end("committed"); return nil }
func (d *fakeDelivery) Release()        { d.end("released") }

func (d *fakeDelivery) end(outcome string) {
	d.u.mu.Lock()
	defer d.u.mu.Unlock()
	d.u.outcome = outcome
}

func (u *fakeUploads) ended() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.outcome
}

// Pending files go to the one-off before attach and leave the staging
// area only once it attached; a failure names the file and every file
// still pending.
func TestDelivery(t *testing.T) {
	const pending = `These 2 files stay pending for your next session: "a", "b/c".`
	for _, tc := range []struct {
		name        string
		up          *fakeUploads
		uploadErr   error
		attachErr   error
		want        result
		wantEvents  []string
		wantOutcome string
	}{
		{name: "delivered", up: &fakeUploads{files: []string{"a=1", "b/c=22"}},
			want:       result{stdout: "in"},
			wantEvents: []string{"upload a=1", "upload b/c=22", "attach"}, wantOutcome: "committed"},
		{name: "nothing pending", up: &fakeUploads{}, want: result{stdout: "in"}, wantEvents: []string{"attach"}, wantOutcome: "committed"},
		{name: "upload refused", up: &fakeUploads{files: []string{"a=1", "b/c=22"}},
			uploadErr: &oneoff.APIError{Op: "upload", Kind: oneoff.ErrUploadRefused, Message: "too\x1b big"},
			want:      result{stderr: `The platform refused the upload of "a" (too  big). ` + pending + "\n", code: ExitUploadRefused}},
		{name: "upload broke", up: &fakeUploads{files: []string{"a=1", "b/c=22"}},
			uploadErr: &oneoff.APIError{Op: "upload", Kind: oneoff.ErrUnreachable},
			want:      result{stderr: `The upload of "a" failed. The platform is unavailable; try again later. ` + pending + "\n", code: ExitPlatformDown}},
		{name: "unreadable", up: &fakeUploads{files: []string{"a=1", "b/c=22"}, readErr: errors.New("disk")},
			want: result{stderr: "The bridge could not read a pending upload. " + pending + "\n", code: ExitInternal}},
		{name: "attach refused", up: &fakeUploads{files: []string{"a=1", "b/c=22"}},
			attachErr:  &oneoff.APIError{Op: "attach", Kind: oneoff.ErrAttachRefused},
			want:       result{stderr: "The platform is unavailable; try again later. " + pending + "\n", code: ExitPlatformDown},
			wantEvents: []string{"upload a=1", "upload b/c=22"}, wantOutcome: "released"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Made on the session's goroutine, read here once the session
			// is over: the TCP connection between is no synchronisation the
			// race detector sees.
			var made atomic.Pointer[fakeOneOff]
			p := &fakePlatform{oneOff: func() *fakeOneOff {
				o := &fakeOneOff{prog: echo(0), uploadErr: tc.uploadErr, attachErr: tc.attachErr}
				made.Store(o)
				return o
			}}
			up := tc.up
			b := startBridge(t, Config{}, p, up, "")
			if got := b.run(t, "demo", "cat", "in", nil); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got := made.Load().log(); !slices.Equal(got, tc.wantEvents) {
				t.Errorf("one-off saw %q, want %q", got, tc.wantEvents)
			}
			if got := up.ended(); got != tc.wantOutcome {
				t.Errorf("delivery %q, want %q", got, tc.wantOutcome)
			}
		})
	}
}

// A shell with a terminal shows each file's upload.
func TestDeliveryProgress(t *testing.T) {
	p := &fakePlatform{}
	b := startBridge(t, Config{}, p, &fakeUploads{files: []string{"a=1"}}, "")
	s, in, _, errOut := startShell(t, b, 80, 24)
	readUntil(t, errOut, " s\r\n")
	if line := readUntil(t, errOut, "\r\n"); line != "Uploading a (1 B)... done\r\n" {
		t.Errorf("progress %q", line)
	}
	in.Close()
	if code := exitCode(t, s.Wait()); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// The staging area's own commands and SFTP are answered by the bridge,
// starting no one-off.
func TestServedByTheBridge(t *testing.T) {
	for _, tc := range []struct {
		name      string
		up        *fakeUploads
		subsystem string // "" for an exec of command
		command   string
		want      result
		refused   bool
	}{
		{name: "scp intercepted", up: &fakeUploads{}, command: "scp -t .", want: result{stdout: "scp for demo", code: 4}},
		{name: "sftp", up: &fakeUploads{}, subsystem: "sftp", want: result{stdout: "sftp for demo"}},
		{name: "sftp error", up: &fakeUploads{sftpErr: errors.New("broken")}, subsystem: "sftp", want: result{stdout: "sftp for demo", code: 1}},
		{name: "other subsystem", up: &fakeUploads{}, subsystem: "netconf", refused: true},
		{name: "sftp without a staging area", subsystem: "sftp", refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePlatform{}
			b := startBridge(t, Config{}, p, tc.up, "")
			if tc.subsystem == "" {
				if got := b.run(t, "demo", tc.command, "", nil); got != tc.want {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
			} else {
				ch, reqs, err := b.dial(t, "demo").OpenChannel("session", nil)
				if err != nil {
					t.Fatal(err)
				}
				ok, err := ch.SendRequest("subsystem", true, gossh.Marshal(&stringMsg{tc.subsystem}))
				if ok == tc.refused || err != nil {
					t.Fatalf("subsystem %q: accepted %v, %v", tc.subsystem, ok, err)
				}
				if !tc.refused {
					out, _ := io.ReadAll(ch)
					got := result{stdout: string(out), code: -1}
					for req := range reqs {
						var msg exitStatusMsg
						if req.Type == "exit-status" && gossh.Unmarshal(req.Payload, &msg) == nil {
							got.code = int(msg.Status)
						}
					}
					if got != tc.want {
						t.Errorf("got %+v, want %+v", got, tc.want)
					}
				}
			}
			if n := len(p.requests()); n != 0 {
				t.Errorf("%d one-offs started", n)
			}
		})
	}
}

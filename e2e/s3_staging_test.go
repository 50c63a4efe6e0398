package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sshbridge/internal/testkit"
)

// s3Staging is what several bridges share to behave as one: the store, a
// prefix in its bucket, the staging key and the host key.
type s3Staging struct {
	store      *testkit.Weed
	prefix     string
	stagingKey string
	hostKey    string
}

// newS3Staging makes the prefix and the keys bridges on store share.
func newS3Staging(t *testing.T, store *testkit.Weed) *s3Staging {
	t.Helper()
	st := &s3Staging{store: store, prefix: "staging/" + randomHex(4), stagingKey: StagingKey(t)}
	st.hostKey = filepath.Join(t.TempDir(), "ssh_host_ed25519_key")
	keygenRun(t, "-q", "-t", "ed25519", "-N", "", "-C", "bridges", "-f", st.hostKey)
	return st
}

// options are a bridge's on the shared staging area, with more flags.
func (st *s3Staging) options(t *testing.T, more ...string) Options {
	return Options{
		Args: append([]string{
			"--staging-url", "s3://" + st.store.Bucket + "/" + st.prefix,
			"--staging-key-file", st.stagingKey,
			"--host-key", st.hostKey,
		}, more...),
		Env: st.store.Env(t),
	}
}

// bridge starts a bridge with the embedded platform on the shared
// staging area.
func (st *s3Staging) bridge(t *testing.T, more ...string) *Bridge {
	t.Helper()
	return StartBridge(t, st.options(t, more...))
}

// kill ends the bridge with SIGKILL, as a machine that dies: nothing of its
// own shutdown runs.
func (b *Bridge) kill() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.t.Fatal(err)
	}
	<-b.exited
	b.cmd = nil
}

// hostKeySeen is the ed25519 host key a client sees at the bridge's
// address (ssh-keyscan), as "type base64".
func hostKeySeen(t *testing.T, b *Bridge) string {
	t.Helper()
	out, err := exec.Command(need(t, "ssh-keyscan"), "-t", "ed25519", "-p", b.Port, b.Host).Output()
	if err != nil {
		t.Fatalf("ssh-keyscan %s: %v", b.Addr, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		t.Fatalf("ssh-keyscan %s: %q", b.Addr, out)
	}
	return f[1] + " " + f[2]
}

// markedFile is content that holds marker many times among random bytes,
// so that a store holding any stretch of it in clear shows the marker.
func markedFile(marker string, size int) []byte {
	var buf bytes.Buffer
	for buf.Len() < size {
		buf.WriteString(marker + "\n")
		buf.Write(randomData(4000))
	}
	return buf.Bytes()[:size]
}

// listing is the names `sftp ls -1` shows in the staging area's top
// directory, in its order.
func listing(t *testing.T, b *Bridge, dir string) string {
	t.Helper()
	return pendingList(t, b, dir)
}

// Two bridges on one bucket with one host key behave as one: what is
// uploaded through A by scp and sftp is listed by both and delivered by a
// session through B, hashes equal, once; the client sees one host key on
// both; the store never holds the files' content in clear.
func TestS3TwoBridgesOneStagingArea(t *testing.T) {
	st := newS3Staging(t, testkit.SharedWeed(t))
	a, b := st.bridge(t), st.bridge(t)
	if ka, kb := hostKeySeen(t, a), hostKeySeen(t, b); ka != kb {
		t.Fatalf("host keys differ:\n%s\n%s", ka, kb)
	}
	marker := "PLAINTEXT-MARKER-" + randomHex(8)
	files := map[string][]byte{
		"by-scp.bin":    markedFile(marker, 3<<20+17),
		"by-sftp.txt":   []byte(marker + " a small file\n"),
		"tree/sub/deep": markedFile(marker, 70<<10),
	}
	dir := localTree(t, files)
	baseline := len(st.store.Keys(st.prefix))
	mustOK(t, "scp via A", a.client(t, dir, "", "scp", "by-scp.bin", "demo-app@"+a.Host+":"))
	mustOK(t, "sftp via A", a.sftpBatch(t, dir, "", "demo-app", "put by-sftp.txt\nput -r tree\n"))

	for _, br := range []*Bridge{a, b} {
		if got := listing(t, br, dir); got != "by-scp.bin,by-sftp.txt,tree" {
			t.Fatalf("sftp ls on %s: %q", br.Addr, got)
		}
		r := br.sftpBatch(t, dir, "", "demo-app", "ls -l tree/sub\n")
		mustOK(t, "ls -l", r)
		if !strings.Contains(r.Stdout, strconv.Itoa(70<<10)) || !strings.Contains(r.Stdout, "deep") {
			t.Fatalf("ls -l tree/sub on %s:\n%s", br.Addr, r.Stdout)
		}
	}

	// Nothing in the store holds the content in clear.
	keys := st.store.Keys(st.prefix)
	if len(keys) == 0 {
		t.Fatal("the store holds no object while files are pending")
	}
	for _, k := range keys {
		if obj := st.store.Get(k); bytes.Contains(obj, []byte(marker)) {
			t.Fatalf("object %s holds the uploaded file's content in clear", k)
		}
	}

	if got, want := remoteHashes(t, b, "demo-app"), hashes(files, ""); got != want {
		t.Fatalf("the one-off via B has\n%s\nwant\n%s", got, want)
	}
	for _, br := range []*Bridge{a, b} {
		if got := listing(t, br, dir); got != "" {
			t.Fatalf("pending on %s after the delivery: %q", br.Addr, got)
		}
	}
	if got := remoteHashes(t, a, "demo-app"); got != "" {
		t.Fatalf("a second session via A got\n%s", got)
	}
	// The delivered files' objects leave the store.
	waitFor(t, 30*time.Second, "objects of delivered files deleted", func() bool { return len(st.store.Keys(st.prefix)) == baseline })
}

// --upload-quota holds across bridges: what is pending through A counts
// against an upload through B.
func TestS3QuotaAcrossBridges(t *testing.T) {
	st := newS3Staging(t, testkit.SharedWeed(t))
	a := st.bridge(t, "--upload-quota", "3M")
	b := st.bridge(t, "--upload-quota", "3M")
	files := map[string][]byte{"two": randomData(2 << 20), "more": randomData(2 << 20), "half": randomData(512 << 10)}
	dir := localTree(t, files)
	mustOK(t, "2 MiB via A", a.sftpBatch(t, dir, "", "demo-app", "put two\n"))
	r := b.sftpBatch(t, dir, "", "app-b", "put more\n")
	if r.Code == 0 || !strings.Contains(r.Stderr, "upload quota exceeded (3 MiB pending per user") {
		t.Fatalf("2 MiB more via B, another app of the same user: exit %d\n%s", r.Code, r.Stderr)
	}
	r = b.client(t, dir, "", "scp", "-O", "more", "demo-app@"+b.Host+":")
	if r.Code == 0 || !strings.Contains(r.Stderr, "upload quota exceeded") {
		t.Fatalf("scp -O over the quota via B: exit %d\n%s", r.Code, r.Stderr)
	}
	mustOK(t, "half a MiB via B", b.sftpBatch(t, dir, "", "demo-app", "put half\n"))
	for _, br := range []*Bridge{a, b} {
		if got := listing(t, br, dir); got != "half,two" {
			t.Fatalf("pending on %s: %q", br.Addr, got)
		}
	}
	// Delivered, the files no longer count: B takes 2 MiB again.
	if got, want := remoteHashes(t, a, "demo-app"), "half="+sha(files["half"])+"\ntwo="+sha(files["two"]); got != want {
		t.Fatalf("the one-off via A has\n%s\nwant\n%s", got, want)
	}
	mustOK(t, "2 MiB via B once delivered", b.sftpBatch(t, dir, "", "demo-app", "put more\n"))
}

// bridgeReadBytes is what the bridge process has read so far (rchar of
// /proc/PID/io: sockets included).
func bridgeReadBytes(t *testing.T, b *Bridge) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", b.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no rchar in /proc/%d/io", b.cmd.Process.Pid)
	return 0
}

// A bridge killed while a file is uploaded through it leaves nothing
// pending, on any bridge.
func TestS3BridgeKilledDuringUpload(t *testing.T) {
	st := newS3Staging(t, testkit.SharedWeed(t))
	a, b := st.bridge(t), st.bridge(t)
	dir := localTree(t, map[string][]byte{"big": randomData(20 << 20)})
	for _, program := range []string{"scp", "sftp"} {
		t.Run(program, func(t *testing.T) {
			args := append(a.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", a.Port, "-l", "8000")
			if program == "scp" {
				args = append(args, "big", "demo-app@"+a.Host+":")
			} else {
				batch := filepath.Join(t.TempDir(), "batch")
				if err := os.WriteFile(batch, []byte("put big\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-b", batch, "demo-app@"+a.Host)
			}
			before := bridgeReadBytes(t, a)
			cmd := exec.Command(need(t, program), args...)
			cmd.Dir = dir
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			// Kill the bridge once it has read a few MiB of the file.
			waitFor(t, 60*time.Second, "the upload under way", func() bool { return bridgeReadBytes(t, a)-before > 3<<20 })
			a.kill()
			if got := listing(t, b, dir); got != "" {
				t.Fatalf("pending on B after A died mid-upload: %q", got)
			}
			if got := remoteHashes(t, b, "demo-app"); got != "" {
				t.Fatalf("a session via B got\n%s", got)
			}
			a.start()
			if got := listing(t, a, dir); got != "" {
				t.Fatalf("pending on A restarted: %q", got)
			}
		})
	}
}

// A bridge killed once a file is staged, before any session: another
// bridge delivers it.
func TestS3BridgeKilledBeforeDelivery(t *testing.T) {
	st := newS3Staging(t, testkit.SharedWeed(t))
	a, b := st.bridge(t), st.bridge(t)
	files := map[string][]byte{"staged": randomData(5 << 20), "also": []byte("also\n")}
	dir := localTree(t, files)
	mustOK(t, "put via A", a.sftpBatch(t, dir, "", "demo-app", "put staged\nput also\n"))
	a.kill()
	if got := listing(t, b, dir); got != "also,staged" {
		t.Fatalf("pending on B: %q", got)
	}
	if got, want := remoteHashes(t, b, "demo-app"), hashes(files, ""); got != want {
		t.Fatalf("the one-off via B has\n%s\nwant\n%s", got, want)
	}
	if got := remoteHashes(t, b, "demo-app"); got != "" {
		t.Fatalf("a second session via B got\n%s", got)
	}
}

// hangingPlatform is `bridge platform` behind a proxy whose file uploads
// never answer: the body is read, then the request hangs until the test
// ends, as a delivery whose bridge dies in the middle. The real platform
// cannot be made to hang there.
type hangingPlatform struct {
	URL     string        // the proxy: the bridge's --api-url
	posted  chan string   // the name of each file whose upload arrived
	release chan struct{} // closed at the end of the test
}

func startHangingPlatform(t *testing.T) *hangingPlatform {
	t.Helper()
	p := &hangingPlatform{posted: make(chan string, 16), release: make(chan struct{})}
	var backend *url.URL
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/files") {
			body, _ := io.ReadAll(r.Body)
			p.posted <- uploadName(r.Header.Get("Content-Type"), body)
			<-p.release
			return
		}
		httputil.NewSingleHostReverseProxy(backend).ServeHTTP(w, r)
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(p.release) })
		front.Close()
	})
	p.URL = front.URL
	var err error
	backend, err = url.Parse(startPlatform(t, "--public-url", front.URL))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A bridge killed while it delivers a file: the file stays pending under
// the dead bridge's lease, which no other bridge takes before it expires;
// once it has, the next session through another bridge gets the file,
// and the one after does not.
func TestS3BridgeKilledMidDelivery(t *testing.T) {
	const lease = 30 * time.Second
	st := newS3Staging(t, testkit.SharedWeed(t))
	p := startHangingPlatform(t)
	opts := st.options(t, "--api-url", p.URL, "--staging-lease", lease.String())
	opts.Env = append(opts.Env, "ONEOFF_API_TOKEN="+canaryToken)
	a := StartBridge(t, opts)
	b := st.bridge(t, "--staging-lease", lease.String())
	files := map[string][]byte{"leased": randomData(3 << 20)}
	dir := localTree(t, files)
	mustOK(t, "put via A", a.sftpBatch(t, dir, "", "demo-app", "put leased\n"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	session := a.SSH(ctx, "demo-app", nil, "true")
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	defer session.Wait()
	select {
	case name := <-p.posted:
		if name != "leased" {
			t.Fatalf("A delivers %q", name)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("A never started the delivery")
	}
	a.kill()
	killed := time.Now()
	cancel()

	// Within the lease the file is A's: B neither delivers it nor loses it.
	if got := remoteHashes(t, b, "demo-app"); got != "" {
		t.Fatalf("a session via B within the lease got\n%s", got)
	}
	// A renews its lease every third of its life, so it expires no sooner
	// than two thirds of it after the kill.
	if d := time.Since(killed); d > 2*lease/3 {
		t.Fatalf("the session within the lease ended %s after the kill: the lease of %s may have expired before it began", d, lease)
	}
	if got := listing(t, b, dir); got != "leased" {
		t.Fatalf("pending on B during the dead bridge's lease: %q", got)
	}

	// After the lease, a session via B gets it, exactly once.
	waitFor(t, 2*lease, "the lease expired", func() bool { return time.Since(killed) > lease })
	if got, want := remoteHashes(t, b, "demo-app"), hashes(files, ""); got != want {
		t.Fatalf("a session via B after the lease got\n%s\nwant\n%s", got, want)
	}
	if got := remoteHashes(t, b, "demo-app"); got != "" {
		t.Fatalf("the next session via B got\n%s", got)
	}
	if got := listing(t, b, dir); got != "" {
		t.Fatalf("pending after the delivery: %q", got)
	}
}

// The store down: an upload fails with a clear SFTP error and nothing
// becomes pending; a session says clearly why its files could not be
// delivered; once the store is back, what was pending before is delivered,
// nothing lost.
func TestS3StoreDown(t *testing.T) {
	st := newS3Staging(t, testkit.StartWeed(t))
	b := st.bridge(t)
	files := map[string][]byte{"before": randomData(1 << 20), "during": randomData(1 << 20)}
	dir := localTree(t, files)
	mustOK(t, "put before", b.sftpBatch(t, dir, "", "demo-app", "put before\n"))

	st.store.Stop()
	r := b.sftpBatch(t, dir, "", "demo-app", "put during\n")
	if r.Code == 0 || strings.Count(r.Stderr, "the upload store is unavailable; try again later") != 1 {
		t.Fatalf("put with the store down: exit %d, want the reason once on stderr\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	// A listing too says why: OpenSSH's sftp itself shows only
	// "Failure", or nothing at all for the start directory's.
	r = b.sftpBatch(t, dir, "", "demo-app", "ls\n")
	if !strings.Contains(r.Stderr, "the upload store is unavailable; try again later") {
		t.Fatalf("ls with the store down: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	r = b.client(t, dir, "", "scp", "during", "demo-app@"+b.Host+":")
	if r.Code == 0 || !strings.Contains(r.Stderr, "the upload store is unavailable") {
		t.Fatalf("scp with the store down: exit %d\n%s", r.Code, r.Stderr)
	}
	// The user's line says why: the store, not a file, is the trouble.
	r = b.Run("demo-app", nil, "ls /tmp/uploads 2>/dev/null; echo ran")
	if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "store is unavailable") {
		t.Fatalf("a session with the store down: %+v", r)
	}
	if !b.LogHas("session failed") {
		t.Fatalf("the session's cause is not in the log:\n%s", tail(b.Log(), 20))
	}
	// With the store down the bridge cannot list what is pending: a
	// session is not told of pending files it may not have (here an app
	// with none).
	r = b.Run("other-app", nil, "echo ran")
	if r.Code != 248 || r.Stdout != "" || !strings.Contains(r.Stderr, "The upload store is unavailable, so the bridge cannot tell whether files are pending for you") || strings.Contains(r.Stderr, "your pending files") {
		t.Fatalf("a session with nothing pending, the store down: %+v", r)
	}

	st.store.Start()
	if got := listing(t, b, dir); got != "before" {
		t.Fatalf("pending once the store is back: %q", got)
	}
	if got, want := remoteHashes(t, b, "demo-app"), "before="+sha(files["before"]); got != want {
		t.Fatalf("the one-off once the store is back has\n%s\nwant\n%s", got, want)
	}
	mustOK(t, "put once the store is back", b.sftpBatch(t, dir, "", "demo-app", "put during\n"))
}

// The store goes down while a file is uploaded: the transfer fails with a
// clear SFTP error, the file does not become pending, and what was pending
// before is delivered once the store is back.
func TestS3StoreDownMidUpload(t *testing.T) {
	st := newS3Staging(t, testkit.StartWeed(t))
	b := st.bridge(t)
	files := map[string][]byte{"before": randomData(1 << 20), "cut": randomData(24 << 20)}
	dir := localTree(t, files)
	mustOK(t, "put before", b.sftpBatch(t, dir, "", "demo-app", "put before\n"))

	batch := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(batch, []byte("put cut\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// 2 MB/s: the transfer lasts about 12 s.
	args := append(b.SSHArgs(""), "-o", "LogLevel=ERROR", "-P", b.Port, "-l", "16000", "-b", batch, "demo-app@"+b.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, need(t, "sftp"), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	before := bridgeReadBytes(t, b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the upload under way", func() bool { return bridgeReadBytes(t, b)-before > 4<<20 })
	st.store.Stop()
	err := cmd.Wait()
	if err == nil || !strings.Contains(stderr.String(), "the upload store is unavailable") {
		t.Fatalf("put with the store gone mid-transfer: %v\n%s", err, stderr.String())
	}

	st.store.Start()
	if got := listing(t, b, dir); got != "before" {
		t.Fatalf("pending once the store is back: %q", got)
	}
	if got, want := remoteHashes(t, b, "demo-app"), "before="+sha(files["before"]); got != want {
		t.Fatalf("the one-off once the store is back has\n%s\nwant\n%s", got, want)
	}
}

// The start fails closed, with a line that says why, when the S3 staging
// area cannot be used as configured: no key file, a key file with no URL
// (bridges meant to share a store would each stage on their own disk), a
// key file that is not a key, a bucket that does not exist, credentials
// the store refuses.
func TestS3StartRefusals(t *testing.T) {
	st := newS3Staging(t, testkit.SharedWeed(t))
	badKey := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(badKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "s3://" + st.store.Bucket + "/" + st.prefix
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no key file", []string{"--staging-url", url}, nil, "--staging-key-file is required"},
		{"a key file and no URL", []string{"--staging-key-file", st.stagingKey}, nil,
			"set, but --staging-url is not"},
		{"not a key", []string{"--staging-url", url, "--staging-key-file", badKey}, nil,
			"staging key file " + badKey + ": want a 256-bit key in base64"},
		{"no bucket", []string{"--staging-url", "s3://no-such-bucket/x", "--staging-key-file", st.stagingKey}, nil,
			`bucket "no-such-bucket" does not exist`},
		{"bad credentials", []string{"--staging-url", url, "--staging-key-file", st.stagingKey},
			[]string{"AWS_SECRET_ACCESS_KEY=" + randomHex(20)}, "access denied (check the credentials)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			keys := filepath.Join(dir, "authorized_keys")
			if err := os.WriteFile(keys, []byte(publicKey(t, clientKey(t, "default"))+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--authorized-keys", keys}, c.args...)
			cmd := exec.CommandContext(ctx, binary, args...)
			cmd.Env = append(append(os.Environ(), st.store.Env(t)...), c.env...)
			r := runCmd(t, cmd, nil)
			if r.Code <= 0 || !strings.Contains(r.Stderr, c.want) {
				t.Fatalf("exit %d, want a failed start saying %q:\n%s", r.Code, c.want, r.Stderr)
			}
			if strings.Contains(r.Stderr, "bridge listening") {
				t.Fatalf("the bridge listened before it failed:\n%s", r.Stderr)
			}
		})
	}
}

// A file larger than the spool for uploads in flight is refused with a
// clear SFTP error and does not become pending.
func TestS3SpoolFull(t *testing.T) {
	st := newS3Staging(t, testkit.SharedWeed(t))
	b := st.bridge(t, "--staging-spool-size", "1M")
	files := map[string][]byte{"big": randomData(3 << 20), "small": randomData(100 << 10)}
	dir := localTree(t, files)
	r := b.sftpBatch(t, dir, "", "demo-app", "put big\n")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no space left in the bridge's spool for uploads in flight") {
		t.Fatalf("put beyond the spool: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	mustOK(t, "put within the spool", b.sftpBatch(t, dir, "", "demo-app", "put small\n"))
	if got := listing(t, b, dir); got != "small" {
		t.Fatalf("pending: %q", got)
	}
	if got, want := remoteHashes(t, b, "demo-app"), "small="+sha(files["small"]); got != want {
		t.Fatalf("the one-off has\n%s\nwant\n%s", got, want)
	}
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultyPlatform is `bridge platform` behind a proxy that fails, on cue,
// what the real platform cannot be made to fail at a given moment: the
// upload of one file (the body read, then the connection dropped with no
// answer, as when the platform is killed) and the attach (the connection
// dropped). Everything else, the attach stream included, reaches the real
// platform.
type faultyPlatform struct {
	URL     string // the proxy: give it to the bridge as --api-url
	backend *url.URL

	mu         sync.Mutex
	failUpload string   // name of the file whose upload fails; "" none
	failAttach bool     // attaches fail
	accepted   []string // names whose upload the platform answered 200
	conns      []net.Conn
}

func startFaultyPlatform(t *testing.T) *faultyPlatform {
	t.Helper()
	p := &faultyPlatform{}
	front := httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	front.Start()
	t.Cleanup(func() {
		front.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	p.URL = front.URL
	// Operation and attach URLs must point at the proxy too.
	backend, err := url.Parse(startPlatform(t, "--public-url", front.URL))
	if err != nil {
		t.Fatal(err)
	}
	p.backend = backend
	return p
}

func (p *faultyPlatform) set(failUpload string, failAttach bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failUpload, p.failAttach = failUpload, failAttach
	p.accepted = nil
}

func (p *faultyPlatform) acceptedFiles() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.accepted, ",")
}

func (p *faultyPlatform) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	failUpload, failAttach := p.failUpload, p.failAttach
	p.mu.Unlock()
	switch {
	case r.Method == http.MethodConnect && failAttach:
		p.drop(w)
	case r.Method == http.MethodConnect:
		p.relay(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/files"):
		body, _ := io.ReadAll(r.Body)
		name := uploadName(r.Header.Get("Content-Type"), body)
		if name == failUpload {
			p.drop(w)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w}
		httputil.NewSingleHostReverseProxy(p.backend).ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			p.mu.Lock()
			p.accepted = append(p.accepted, name)
			p.mu.Unlock()
		}
	default:
		httputil.NewSingleHostReverseProxy(p.backend).ServeHTTP(w, r)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// uploadName reads the filename of a one-part multipart body.
func uploadName(contentType string, body []byte) string {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	part, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).NextPart()
	if err != nil {
		return ""
	}
	return part.FileName()
}

// drop closes the connection without an answer.
func (p *faultyPlatform) drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// relay passes an attach through to the platform as raw bytes both ways.
func (p *faultyPlatform) relay(w http.ResponseWriter, r *http.Request) {
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	server, err := net.Dial("tcp", p.backend.Host)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, client, server)
	p.mu.Unlock()
	fmt.Fprintf(server, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", r.RequestURI, p.backend.Host)
	r.Header.Write(server)
	io.WriteString(server, "\r\n")
	go func() {
		io.Copy(server, buf.Reader)
		server.(*net.TCPConn).CloseWrite()
	}()
	go func() {
		io.Copy(client, server)
		client.(*net.TCPConn).CloseWrite()
	}()
}

var fiveFiles = map[string][]byte{"f1": randomData(1 << 20), "f2": randomData(1 << 20), "f3": randomData(1 << 20),
	"f4": randomData(1 << 20), "f5": randomData(1 << 20)}

const fivePending = `These 5 files stay pending for your next session: "f1", "f2", "f3", "f4", "f5".`

// putFive stages f1 to f5, in that order, and returns the local directory.
func putFive(t *testing.T, b *Bridge) string {
	t.Helper()
	dir := localTree(t, fiveFiles)
	mustOK(t, "put", b.sftpBatch(t, dir, "", "demo-app", "put f1\nput f2\nput f3\nput f4\nput f5\n"))
	return dir
}

func pendingList(t *testing.T, b *Bridge, dir string) string {
	t.Helper()
	r := b.sftpBatch(t, dir, "", "demo-app", "ls -1\n")
	mustOK(t, "ls", r)
	var names []string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "sftp>") {
			names = append(names, line)
		}
	}
	return strings.Join(names, ",")
}

// The platform dies while the third of five files is sent: the two it
// accepted went to a one-off that never ran the command, so all five stay
// pending, the terminal never says "done" for the third, and the user's
// line names every file. The next session, on a healthy platform, gets
// them all, and only then do they leave the staging area.
func TestDeliveryFailureKeepsEveryFile(t *testing.T) {
	p := startFaultyPlatform(t)
	b := remoteBridge(t, p.URL)
	dir := putFive(t, b)

	p.set("f3", false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A shell session: only those show upload progress.
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-tt"}), nil)
	if r.Code != 242 {
		t.Fatalf("exit %d, want 242\nstderr: %q", r.Code, r.Stderr)
	}
	if got := p.acceptedFiles(); got != "f1,f2" {
		t.Fatalf("the platform accepted %q, want f1,f2", got)
	}
	for _, want := range []string{
		"Uploading f1 (1.0 MiB)... done\r\n",
		"Uploading f2 (1.0 MiB)... done\r\n",
		"Uploading f3 (1.0 MiB)... failed\r\n",
		`The upload of "f3" failed. The platform is unavailable; try again later. ` + fivePending + "\r\n",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%q", want, r.Stderr)
		}
	}
	if got := pendingList(t, b, dir); got != "f1,f2,f3,f4,f5" {
		t.Fatalf("pending after the failed delivery: %q, want all five", got)
	}

	p.set("", false)
	if got, want := remoteHashes(t, b, "demo-app"), hashes(fiveFiles, ""); got != want {
		t.Fatalf("the next one-off has\n%s\nwant\n%s", got, want)
	}
	if got := pendingList(t, b, dir); got != "" {
		t.Fatalf("pending after the attached session: %q, want none", got)
	}
}

// The platform takes all five files, then the attach fails: the one-off
// never ran the command, so all five stay pending and the user's line
// names them. A session that attaches removes them.
func TestAttachFailureKeepsEveryFile(t *testing.T) {
	p := startFaultyPlatform(t)
	b := remoteBridge(t, p.URL)
	dir := putFive(t, b)

	p.set("", true)
	r := b.Run("demo-app", nil, "true")
	if want := "The platform is unavailable; try again later. " + fivePending + "\n"; r.Code != 242 || r.Stderr != want {
		t.Fatalf("exit %d, stderr %q\nwant 242, %q", r.Code, r.Stderr, want)
	}
	if got := p.acceptedFiles(); got != "f1,f2,f3,f4,f5" {
		t.Fatalf("the platform accepted %q, want all five before the attach", got)
	}
	if got := pendingList(t, b, dir); got != "f1,f2,f3,f4,f5" {
		t.Fatalf("pending after the failed attach: %q, want all five", got)
	}

	p.set("", false)
	if got, want := remoteHashes(t, b, "demo-app"), hashes(fiveFiles, ""); got != want {
		t.Fatalf("the next one-off has\n%s\nwant\n%s", got, want)
	}
	if got := pendingList(t, b, dir); got != "" {
		t.Fatalf("pending after the attached session: %q, want none", got)
	}
}

// orderFiles stages n files of 32 KiB whose names do not sort in the order
// they are staged, and returns that order and the files.
func orderFiles(t *testing.T, b *Bridge, n int) ([]string, map[string][]byte) {
	t.Helper()
	files := map[string][]byte{}
	var order []string
	var batch strings.Builder
	for i := range n {
		name := fmt.Sprintf("f%03d", (i*37)%n) // 37 is prime to n: a permutation
		files[name] = randomData(32 << 10)
		order = append(order, name)
		fmt.Fprintf(&batch, "put %s\n", name)
	}
	mustOK(t, "put", b.sftpBatch(t, localTree(t, files), "", "demo-app", batch.String()))
	return order, files
}

// Files delivered several at once arrive as if one after the other, in the
// order they were staged, wherever a user can see it: the progress lines
// of a shell session, and the files' modification times in the one-off
// (never earlier than the file staged before's); every file arrives whole.
func TestDeliveryKeepsStagingOrder(t *testing.T) {
	b := StartBridge(t, Options{})
	const n = 120

	order, _ := orderFiles(t, b, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app", []string{"-tt"}), strings.NewReader("exit\n"))
	if r.Code != 0 {
		t.Fatalf("shell: exit %d\n%s", r.Code, r.Stderr)
	}
	var shown []string
	for _, line := range strings.Split(r.Stderr, "\r\n") {
		if name, ok := strings.CutPrefix(line, "Uploading "); ok {
			if !strings.HasSuffix(line, "... done") {
				t.Fatalf("progress line %q", line)
			}
			shown = append(shown, strings.Fields(name)[0])
		}
	}
	if strings.Join(shown, ",") != strings.Join(order, ",") {
		t.Fatalf("progress lines in the order\n%q\nwant the staging order\n%q", shown, order)
	}

	order, files := orderFiles(t, b, n)
	out := b.Run("demo-app", nil, "cd /tmp/uploads && stat -c '%.9Y %n' * && sha256sum *")
	if out.Code != 0 {
		t.Fatalf("stat: exit %d\n%s", out.Code, out.Stderr)
	}
	mtimes := map[string]string{}
	var sums []string
	for _, line := range strings.Split(strings.TrimSpace(out.Stdout), "\n") {
		if sum, name, ok := strings.Cut(line, "  "); ok {
			sums = append(sums, name+"="+sum)
		} else if mtime, name, ok := strings.Cut(line, " "); ok {
			mtimes[name] = mtime
		}
	}
	slices.Sort(sums)
	if got, want := strings.Join(sums, "\n"), hashes(files, ""); got != want {
		t.Fatalf("the one-off has\n%s\nwant\n%s", got, want)
	}
	for i := 1; i < len(order); i++ {
		prev, cur := mtimes[order[i-1]], mtimes[order[i]]
		// Same digits each: seconds, a dot and nine digits.
		if len(prev) != len(cur) || cur < prev {
			t.Fatalf("%s modified at %s, before %s staged before it (%s)", order[i], cur, order[i-1], prev)
		}
	}
}

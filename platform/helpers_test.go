package platform

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"sshbridge/internal/testkit"
)

const testAPIToken = "tk-us-test"

// testPlatform is a platform served on a loopback port for one test.
type testPlatform struct {
	*Platform
	t     testing.TB
	base  string
	token string // bearer JWT
	http  *http.Client
}

func startPlatform(t testing.TB, cfg Config) *testPlatform {
	t.Helper()
	if cfg.APIToken == "" {
		cfg.APIToken = testAPIToken
	}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tp := &testPlatform{Platform: p, t: t, base: "http://" + testkit.Serve(t, p),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	t.Cleanup(tp.http.CloseIdleConnections)
	tp.token = tp.exchange(cfg.APIToken)
	return tp
}

func (tp *testPlatform) exchange(apiToken string) string {
	tp.t.Helper()
	req, _ := http.NewRequest("POST", tp.base+"/v1/tokens/exchange", strings.NewReader("{}"))
	req.SetBasicAuth("", apiToken)
	status, body := tp.do(req)
	if status != 200 {
		tp.t.Fatalf("exchange: %d %s", status, body)
	}
	var v struct{ Token string }
	if err := json.Unmarshal(body, &v); err != nil || v.Token == "" {
		tp.t.Fatalf("exchange answer %s: %v", body, err)
	}
	return v.Token
}

func (tp *testPlatform) do(req *http.Request) (int, []byte) {
	tp.t.Helper()
	res, err := tp.http.Do(req)
	if err != nil {
		tp.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tp.t.Fatalf("%s %s: read: %v", req.Method, req.URL, err)
	}
	if len(body) > 0 && res.StatusCode != 200 || strings.HasPrefix(string(body), "{") {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			tp.t.Errorf("%s %s: %d answered Content-Type %q", req.Method, req.URL, res.StatusCode, ct)
		}
	}
	return res.StatusCode, body
}

// api calls the regional API with the bearer token; body is JSON-encoded.
func (tp *testPlatform) api(method, path string, body any) (int, map[string]any) {
	tp.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, tp.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+tp.token)
	req.Header.Set("Content-Type", "application/json")
	status, raw := tp.do(req)
	var v map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			tp.t.Fatalf("%s %s: %d non-JSON answer %q", method, path, status, raw)
		}
	}
	return status, v
}

// testOneOff is a one-off as a test client sees it.
type testOneOff struct {
	tp        *testPlatform
	attachURL string
	container map[string]any
	operation map[string]any
}

// run starts a one-off and waits for its operation, like a client would.
func (tp *testPlatform) run(app, command string, tty bool, env map[string]string) *testOneOff {
	tp.t.Helper()
	body := map[string]any{"command": command, "env": env, "size": "M", "detached": false, "has_uploads": false}
	if !tty {
		body["tty"] = false
	}
	status, v := tp.api("POST", "/v1/apps/"+app+"/run", body)
	if status != 200 {
		tp.t.Fatalf("run: %d %v", status, v)
	}
	opURL, _ := v["operation_url"].(string)
	u, err := url.Parse(opURL)
	if err != nil || opURL == "" {
		tp.t.Fatalf("run: operation_url %q", opURL)
	}
	status, op := tp.api("GET", u.Path, nil)
	if status != 200 {
		tp.t.Fatalf("operation: %d %v", status, op)
	}
	operation, _ := op["operation"].(map[string]any)
	data, _ := operation["start_one_off_data"].(map[string]any)
	attach, _ := data["attach_url"].(string)
	if operation["status"] != "done" || attach == "" {
		tp.t.Fatalf("operation not done: %v", op)
	}
	c, _ := v["container"].(map[string]any)
	return &testOneOff{tp: tp, attachURL: attach, container: c, operation: operation}
}

func (o *testOneOff) basic(req *http.Request) *http.Request {
	req.SetBasicAuth("", o.tp.token)
	return req
}

// attachRaw sends CONNECT and returns the answer's status, the connection
// and the reader that parsed the answer.
func (o *testOneOff) attachRaw(token string) (int, net.Conn, *bufio.Reader) {
	o.tp.t.Helper()
	status, conn, br, err := o.dialAttach(token)
	if err != nil {
		o.tp.t.Fatalf("attach: %v", err)
	}
	return status, conn, br
}

// dialAttach is attachRaw for goroutines: it returns its error.
func (o *testOneOff) dialAttach(token string) (int, net.Conn, *bufio.Reader, error) {
	u, err := url.Parse(o.attachURL)
	if err != nil {
		return 0, nil, nil, err
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return 0, nil, nil, err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(":" + token))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n\r\n", u.Path, u.Host, auth)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return 0, nil, nil, fmt.Errorf("attach answer: %w", err)
	}
	if res.StatusCode != 200 {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return res.StatusCode, conn, br, nil
}

// attach attaches and fails the test unless it is accepted.
func (o *testOneOff) attach() (*net.TCPConn, *bufio.Reader) {
	o.tp.t.Helper()
	status, conn, br := o.attachRaw(o.tp.token)
	if status != 200 {
		conn.Close()
		o.tp.t.Fatalf("attach: %d", status)
	}
	o.tp.t.Cleanup(func() { conn.Close() })
	return conn.(*net.TCPConn), br
}

// wait answers /wait's status and exit code.
func (o *testOneOff) wait() (int, int) {
	o.tp.t.Helper()
	req, _ := http.NewRequest("GET", o.attachURL+"/wait", nil)
	status, body := o.tp.do(o.basic(req))
	var v struct {
		ExitCode int `json:"exit_code"`
	}
	if status == 200 {
		if err := json.Unmarshal(body, &v); err != nil {
			o.tp.t.Fatalf("wait answer %q: %v", body, err)
		}
	}
	return status, v.ExitCode
}

// upload posts one file as Scalingo's CLI does and answers the status.
func (o *testOneOff) upload(name string, content []byte) (int, []byte) {
	o.tp.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name="file"; filename=%q`, name)}
	h["Content-Type"] = []string{"application/octet-stream"}
	pw, _ := mw.CreatePart(h)
	pw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", o.attachURL+"/files", &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return o.tp.do(o.basic(req))
}

// runAndCollect runs command attached and returns all output and the exit code.
func (tp *testPlatform) runAndCollect(command string, tty bool) (string, int) {
	tp.t.Helper()
	o := tp.run("demo", command, tty, nil)
	conn, br := o.attach()
	out, err := io.ReadAll(br)
	if err != nil {
		tp.t.Fatalf("read output: %v", err)
	}
	conn.Close()
	status, code := o.wait()
	if status != 200 {
		tp.t.Fatalf("wait: %d", status)
	}
	return string(out), code
}

// stateEntries lists what is left in the platform's state dir.
func (tp *testPlatform) stateEntries() []string {
	tp.removals.Wait() // ended one-offs' dirs go off the path of /wait
	ents, err := os.ReadDir(tp.stateDir)
	if err != nil {
		tp.t.Fatalf("read state dir: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func jsonSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

package platform

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"testing"
	"time"
)

// cliWire replays requests recorded from Scalingo's CLI (testdata/
// scalingo-cli-1.48.0, README there) against a platform, byte for byte
// apart from the placeholders.
type cliWire struct {
	t    *testing.T
	tp   *testPlatform
	host string
	vars map[string]string
}

func (cw *cliWire) request(name string) []byte {
	cw.t.Helper()
	raw, err := os.ReadFile("testdata/scalingo-cli-1.48.0/" + name)
	if err != nil {
		cw.t.Fatal(err)
	}
	s := string(raw)
	for k, v := range cw.vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if i := strings.Index(s, "{{"); i >= 0 {
		cw.t.Fatalf("%s: placeholder left: %.40s", name, s[i:])
	}
	return []byte(s)
}

// send writes the request on a new connection and returns the answer and
// the reader positioned after its header.
func (cw *cliWire) send(name string) (net.Conn, *bufio.Reader, *http.Response) {
	cw.t.Helper()
	conn, err := net.Dial("tcp", cw.host)
	if err != nil {
		cw.t.Fatal(err)
	}
	cw.t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	raw := cw.request(name)
	if _, err := conn.Write(raw); err != nil {
		cw.t.Fatalf("%s: %v", name, err)
	}
	method := strings.SplitN(string(raw), " ", 2)[0]
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		cw.t.Fatalf("%s: answer: %v", name, err)
	}
	return conn, br, res
}

// call sends one request and decodes its JSON answer into v as the CLI
// does (go-scalingo's types, reduced to the fields it reads).
func (cw *cliWire) call(name string, wantStatus int, v any) *http.Response {
	cw.t.Helper()
	conn, _, res := cw.send(name)
	defer conn.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		cw.t.Fatalf("%s: body: %v", name, err)
	}
	if res.StatusCode != wantStatus {
		cw.t.Fatalf("%s: status %d, want %d: %s", name, res.StatusCode, wantStatus, body)
	}
	if v != nil {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			cw.t.Errorf("%s: Content-Type %q", name, ct)
		}
		if err := json.Unmarshal(body, v); err != nil {
			cw.t.Fatalf("%s: %s: %v", name, body, err)
		}
	}
	return res
}

type cliOperation struct {
	Operation struct {
		ID              string `json:"id"`
		Status          string `json:"status"`
		Type            string `json:"type"`
		Error           string `json:"error"`
		StartOneOffData struct {
			AttachURL string `json:"attach_url"`
		} `json:"start_one_off_data"`
	} `json:"operation"`
}

type cliRunRes struct {
	Container *struct {
		ID    string `json:"id"`
		Label string `json:"label"`
	} `json:"container"`
	OperationURL string `json:"operation_url"`
}

// run posts a recorded run request, waits for its operation as the CLI's
// waiter does and sets OPERATION_ID and ATTACH_PATH.
func (cw *cliWire) run(name string) {
	cw.t.Helper()
	var rr cliRunRes
	res := cw.call(name, 200, &rr)
	if rr.Container == nil || rr.Container.Label == "" || rr.Container.ID == "" {
		cw.t.Fatalf("%s: container without id or label: %+v", name, rr)
	}
	if rr.OperationURL == "" || rr.OperationURL != res.Header.Get("Location") {
		cw.t.Fatalf("%s: operation_url %q, Location %q", name, rr.OperationURL, res.Header.Get("Location"))
	}
	op, err := url.Parse(rr.OperationURL)
	if err != nil || op.Host != cw.host {
		cw.t.Fatalf("%s: operation_url %q not on %s", name, rr.OperationURL, cw.host)
	}
	cw.vars["OPERATION_ID"] = path.Base(op.Path)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var o cliOperation
		cw.call("operation.http", 200, &o)
		switch o.Operation.Status {
		case "pending", "running":
			if time.Now().After(deadline) {
				cw.t.Fatalf("operation still %s", o.Operation.Status)
			}
			time.Sleep(50 * time.Millisecond) // the CLI's waiter polls too
			continue
		case "done":
		default:
			cw.t.Fatalf("operation %+v", o.Operation)
		}
		if o.Operation.Type != "start-one-off" || o.Operation.ID != cw.vars["OPERATION_ID"] {
			cw.t.Fatalf("operation %+v", o.Operation)
		}
		au, err := url.Parse(o.Operation.StartOneOffData.AttachURL)
		if err != nil || au.Scheme != "http" || au.Host != cw.host || au.Path == "" {
			cw.t.Fatalf("attach_url %q", o.Operation.StartOneOffData.AttachURL)
		}
		cw.vars["ATTACH_PATH"] = au.Path
		return
	}
}

// exitCode is the CLI's reading of /wait: a map of ints.
func (cw *cliWire) exitCode() int {
	cw.t.Helper()
	var w map[string]int
	cw.call("wait.http", 200, &w)
	code, ok := w["exit_code"]
	if !ok {
		cw.t.Fatalf("/wait answered %v", w)
	}
	return code
}

// TestScalingoCLIWire shows that the platform answers Scalingo's CLI 1.48.0
// as that CLI needs: its token exchange and first-use calls, a run with an
// environment variable and an uploaded file, its attach, a resize sent once
// output arrived and its exit code; and a run fed from a pipe ending with
// 0x04.
func TestScalingoCLIWire(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	host := strings.TrimPrefix(tp.base, "http://")
	cw := &cliWire{t: t, tp: tp, host: host, vars: map[string]string{
		"HOST":            host,
		"API_TOKEN_BASIC": base64.StdEncoding.EncodeToString([]byte(":" + testAPIToken)),
	}}

	var tok struct {
		Token string `json:"token"`
	}
	cw.call("exchange.http", 200, &tok)
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok.Token)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if seg, err := jsonSegment(parts[1]); err != nil || json.Unmarshal(seg, &claims) != nil || claims.Exp <= time.Now().Unix() {
		t.Fatalf("token claims %q: exp %d", parts[1], claims.Exp)
	}
	cw.vars["BEARER"] = tok.Token
	cw.vars["BEARER_BASIC"] = base64.StdEncoding.EncodeToString([]byte(":" + tok.Token))

	var user struct {
		User struct{ ID, Username, Email string } `json:"user"`
	}
	cw.call("users-self.http", 200, &user)
	if user.User.ID == "" || user.User.Username == "" {
		t.Errorf("users/self: %+v", user)
	}
	var regions struct {
		Regions []struct {
			Name    string `json:"name"`
			API     string `json:"api"`
			Default bool   `json:"default"`
		} `json:"regions"`
	}
	cw.call("regions.http", 200, &regions)
	if len(regions.Regions) == 0 || regions.Regions[0].API != tp.base || regions.Regions[0].Name == "" {
		t.Errorf("regions: %+v, want the API at %s", regions, tp.base)
	}
	var app struct {
		App struct{ ID, Name string } `json:"app"`
	}
	cw.call("app.http", 200, &app)
	if app.App.Name != "demo-app" || app.App.ID == "" {
		t.Errorf("app: %+v", app)
	}

	t.Run("terminal", func(t *testing.T) {
		cw.t = t
		cw.run("run.http")
		cw.call("files.http", 200, nil)
		conn, br, res := cw.send("attach.http")
		if res.StatusCode != 200 {
			t.Fatalf("attach: %s", res.Status)
		}
		var out strings.Builder
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready") {
			t.Fatalf("first output %q: %v", line, err)
		}
		out.WriteString(line)
		cw.call("resize.http", 200, nil)
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		conn.Close()
		out.Write(rest)
		for _, want := range []string{"30 100\r\n", "FOO=bar\r\n", "hello upload\r\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output %q lacks %q", out.String(), want)
			}
		}
		if code := cw.exitCode(); code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
	})

	t.Run("pipe", func(t *testing.T) {
		cw.t = t
		cw.run("run-pipe.http")
		conn, br, res := cw.send("attach.http")
		if res.StatusCode != 200 {
			t.Fatalf("attach: %s", res.Status)
		}
		stdin, err := os.ReadFile("testdata/scalingo-cli-1.48.0/attach-pipe-stdin.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(stdin); err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		conn.Close()
		if !strings.Contains(string(out), "abc\r\n") || !strings.HasSuffix(string(out), "done\r\n") {
			t.Errorf("output %q", out)
		}
		if code := cw.exitCode(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	})
}

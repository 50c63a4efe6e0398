package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A client that reads the CONNECT answer as Scalingo's CLI does (apps/run.go,
// CLI 1.48.0: http.ReadResponse through bufio.NewReader(conn), 4096 bytes,
// then the raw conn) gets the command's first line, 100 runs in 100 with
// both cores busy. In every other run its first read comes only once that
// line is already in its socket, the order a loaded machine gives now and
// then (the CLI lost its first line 1 run in 80 under `script`, 4 in 15 in
// a tmux pane): the platform's answer fills the CLI's buffer exactly, so
// that the output stays in the socket for the raw reads.
func TestCLIReaderKeepsFirstLineUnderLoad(t *testing.T) {
	api := startPlatform(t)
	cli := newCLILikeClient(t, api)
	loadCPUs(t)
	const runs = 100
	var lost []string
	for i := range runs {
		out := cli.run(fmt.Sprintf("echo first-%d; echo second", i), i%2 == 0)
		if want := fmt.Sprintf("first-%d\r\nsecond\r\n", i); out != want {
			lost = append(lost, fmt.Sprintf("run %d: %q, want %q", i+1, out, want))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d runs lost output:\n%s", len(lost), runs, strings.Join(lost, "\n"))
	}
}

// cliLikeClient calls the API as Scalingo's CLI does (PROTOCOL.md section 6).
type cliLikeClient struct {
	t     *testing.T
	api   string
	token string
}

func newCLILikeClient(t *testing.T, api string) *cliLikeClient {
	c := &cliLikeClient{t: t, api: api}
	req, _ := http.NewRequest("POST", api+"/v1/tokens/exchange", strings.NewReader("{}"))
	req.SetBasicAuth("", canaryToken)
	var v struct{ Token string }
	c.call(req, &v)
	c.token = v.Token
	return c
}

func (c *cliLikeClient) call(req *http.Request, v any) {
	c.t.Helper()
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		c.t.Fatalf("%s %s: %s %s", req.Method, req.URL.Path, res.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		c.t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, body)
	}
}

// run starts command on a terminal, attaches as the CLI does and returns
// all the output it read. late: the first read waits until the command's
// first output line is in the socket.
func (c *cliLikeClient) run(command string, late bool) string {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"command": command, "env": map[string]string{"TERM": "xterm"}, "size": "M"})
	req, _ := http.NewRequest("POST", c.api+"/v1/apps/demo-app/run", bytes.NewReader(body))
	var run struct {
		OperationURL string `json:"operation_url"`
	}
	c.call(req, &run)
	var attachURL string
	for deadline := time.Now().Add(30 * time.Second); attachURL == ""; {
		req, _ := http.NewRequest("GET", run.OperationURL, nil)
		var op struct {
			Operation struct {
				Status          string
				StartOneOffData struct {
					AttachURL string `json:"attach_url"`
				} `json:"start_one_off_data"`
			}
		}
		c.call(req, &op)
		attachURL = op.Operation.StartOneOffData.AttachURL
		if attachURL == "" && time.Now().After(deadline) {
			c.t.Fatalf("operation not done within 30 s: %s", op.Operation.Status)
		}
	}

	u, err := url.Parse(attachURL)
	if err != nil {
		c.t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	req, _ = http.NewRequest("CONNECT", attachURL, nil)
	req.SetBasicAuth("", c.token)
	if err := req.Write(conn); err != nil {
		c.t.Fatal(err)
	}
	if late {
		first, _, _ := strings.Cut(command, ";")
		waitInSocket(c.t, conn, strings.TrimPrefix(first, "echo ")+"\r\n")
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		c.t.Fatalf("CONNECT answer: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		c.t.Fatalf("CONNECT: %s", res.Status)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		c.t.Fatalf("stream: %v (%q so far)", err, out)
	}
	return string(out)
}

// waitInSocket returns once conn's receive queue holds marker, reading
// nothing from it (MSG_PEEK), woken by each arrival.
func waitInSocket(t *testing.T, conn net.Conn, marker string) {
	t.Helper()
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var peekErr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN:
			return false
		case err != nil:
			peekErr = err
			return true
		case n == 0:
			peekErr = io.EOF
			return true
		}
		return bytes.Contains(buf[:n], []byte(marker))
	})
	if err == nil {
		err = peekErr
	}
	if err != nil {
		t.Fatalf("waiting for %q in the socket: %v", marker, err)
	}
}

package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sshbridge/internal/testkit"
)

// A one-off runs this test binary, copied where it can read it (its /tmp is
// its own), as a small network tool chosen by netHelperEnv:
//
//	listen    listen on 127.0.0.1:0, say "listening PORT", answer each
//	          connection with NET_HELPER_MARKER, until stdin ends
//	dial      connect to NET_HELPER_ADDR: "connected: WHAT IT READ" or
//	          "no connection: ERROR"
//	loopback  listen on 127.0.0.1:0 and connect to it: "loopback ok"; then
//	          the interfaces: "interfaces: NAME up|down ..."
const (
	netHelperEnv    = "NET_HELPER"
	netHelperAddr   = "NET_HELPER_ADDR"
	netHelperMarker = "NET_HELPER_MARKER"
)

func runNetHelperIfRequested() {
	mode, ok := os.LookupEnv(netHelperEnv)
	if !ok {
		return
	}
	switch mode {
	case "listen":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Printf("listen: %v\n", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, os.Getenv(netHelperMarker))
				c.Close()
			}
		}()
		fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
		io.Copy(io.Discard, os.Stdin)
	case "dial":
		fmt.Println(dialAndRead(os.Getenv(netHelperAddr)))
	case "loopback":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Printf("listen: %v\n", err)
			os.Exit(1)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				fmt.Fprintln(c, "loopback ok")
				c.Close()
			}
		}()
		if got := dialAndRead(ln.Addr().String()); got == "connected: loopback ok" {
			fmt.Println("loopback ok")
		} else {
			fmt.Println(got)
		}
		ifs, err := net.Interfaces()
		if err != nil {
			fmt.Printf("interfaces: %v\n", err)
			os.Exit(1)
		}
		var names []string
		for _, i := range ifs {
			state := "down"
			if i.Flags&net.FlagUp != 0 {
				state = "up"
			}
			names = append(names, i.Name+" "+state)
		}
		fmt.Println("interfaces: " + strings.Join(names, ", "))
	default:
		fmt.Printf("unknown mode %q\n", mode)
		os.Exit(1)
	}
	os.Exit(0)
}

// dialAndRead connects to addr and reads what it is sent, on one line.
func dialAndRead(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "no connection: " + err.Error()
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return "connected: read: " + err.Error()
	}
	return "connected: " + strings.TrimSpace(string(b))
}

var netHelper struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// netHelperPath is the copy of this binary that one-offs can run: outside
// /tmp, readable and executable by everyone (root's one-offs run as nobody).
func netHelperPath(t *testing.T) string {
	t.Helper()
	h := &netHelper
	h.once.Do(func() {
		self, err := os.Executable()
		if err != nil {
			h.err = err
			return
		}
		if h.dir, h.err = os.MkdirTemp("/var/tmp", "platform-net-helper-"); h.err != nil {
			return
		}
		if h.err = os.Chmod(h.dir, 0o755); h.err != nil {
			return
		}
		src, err := os.Open(self)
		if err != nil {
			h.err = err
			return
		}
		defer src.Close()
		path := filepath.Join(h.dir, "net-helper")
		dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		if err != nil {
			h.err = err
			return
		}
		_, err = io.Copy(dst, src)
		if err = errors.Join(err, dst.Close()); err != nil {
			h.err = err
			return
		}
		h.path = path
	})
	if h.err != nil {
		t.Fatalf("copy the test binary for one-offs: %v", h.err)
	}
	return h.path
}

func removeNetHelper() {
	if netHelper.dir != "" {
		os.RemoveAll(netHelper.dir)
	}
}

// netHelperEnvs is the run's environment for the helper in mode.
func netHelperEnvs(mode string, extra ...string) map[string]string {
	env := map[string]string{netHelperEnv: mode, "GORACE": "atexit_sleep_ms=0"}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// runHelper runs the helper in mode in a one-off, in pipe mode, and
// returns its output once it has exited 0.
func runHelper(t *testing.T, tp *testPlatform, mode string, extra ...string) string {
	t.Helper()
	o := tp.run("demo", netHelperPath(t), false, netHelperEnvs(mode, extra...))
	conn, br := o.attach()
	conn.CloseWrite()
	out := readAll(t, br)
	if status, code := o.wait(); status != 200 || code != 0 {
		t.Fatalf("%s one-off: wait %d exit %d\n%s", mode, status, code, out)
	}
	return strings.TrimSpace(out)
}

// listeningOneOff is a one-off listening on its 127.0.0.1:port.
type listeningOneOff struct {
	o    *testOneOff
	conn *net.TCPConn
	br   *bufio.Reader
	port string
}

func startListener(t *testing.T, tp *testPlatform, marker string) *listeningOneOff {
	t.Helper()
	o := tp.run("demo", netHelperPath(t), false, netHelperEnvs("listen", netHelperMarker, marker))
	conn, br := o.attach()
	line, err := br.ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.Fatalf("listening one-off: %q, %v", line, err)
	}
	return &listeningOneOff{o: o, conn: conn, br: br, port: port}
}

// stop ends the listening one-off through its stdin's EOF.
func (l *listeningOneOff) stop(t *testing.T) {
	t.Helper()
	l.conn.CloseWrite()
	rest := readAll(t, l.br)
	if status, code := l.o.wait(); status != 200 || code != 0 {
		t.Errorf("listening one-off: wait %d exit %d\n%s", status, code, rest)
	}
}

// hostListener listens on the host's 127.0.0.1 and answers every
// connection with marker.
func hostListener(t *testing.T, marker string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, marker)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func randomMarker(what string) string { return what + "-" + randomHex(8) }

// TestOwnNetwork: each one-off's 127.0.0.1 is its own. What one listens on
// there is out of reach of the host and of another one-off; no one-off
// reaches what the host listens on at 127.0.0.1, the platform's API
// included; within a one-off the loopback works, and it is the only
// interface. As root (one-offs run as nobody) and in a user namespace.
func TestOwnNetwork(t *testing.T) {
	t.Parallel()
	for _, iso := range []isolation{isolationRoot, isolationUserNS} {
		t.Run(iso.String(), func(t *testing.T) {
			t.Parallel()
			if iso == isolationUserNS {
				if err := probeUserNS(); err != nil {
					t.Fatalf("no user namespaces: %v", err)
				}
			}
			tp := startPlatform(t, Config{})
			if iso == isolationUserNS {
				withIsolation(t, tp, isolationUserNS)
			}
			if !tp.OwnNetwork() {
				t.Fatal("OwnNetwork is false on a host that allows network namespaces")
			}
			hostSecret := randomMarker("host")
			hostAddr := hostListener(t, hostSecret)
			oneOffSecret := randomMarker("one-off")
			l := startListener(t, tp, oneOffSecret)
			defer l.stop(t)

			if got := dialAndRead("127.0.0.1:" + l.port); strings.Contains(got, oneOffSecret) {
				t.Errorf("the host reached a one-off's 127.0.0.1:%s: %s", l.port, got)
			}
			if got := runHelper(t, tp, "dial", netHelperAddr, "127.0.0.1:"+l.port); !strings.HasPrefix(got, "no connection") {
				t.Errorf("a one-off reached another one-off's 127.0.0.1:%s: %s", l.port, got)
			}
			if got := runHelper(t, tp, "dial", netHelperAddr, hostAddr); !strings.HasPrefix(got, "no connection") {
				t.Errorf("a one-off reached the host's %s: %s", hostAddr, got)
			}
			api := strings.TrimPrefix(tp.base, "http://")
			if got := runHelper(t, tp, "dial", netHelperAddr, api); !strings.HasPrefix(got, "no connection") {
				t.Errorf("a one-off reached the platform's API at %s: %s", api, got)
			}
			if got := runHelper(t, tp, "loopback"); got != "loopback ok\ninterfaces: lo up" {
				t.Errorf("loopback inside a one-off: %q", got)
			}
		})
	}
}

// TestHostNetwork: with Config.HostNetwork one-offs share the host's
// network, both ways.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{HostNetwork: true})
	if tp.OwnNetwork() {
		t.Fatal("OwnNetwork is true with HostNetwork")
	}
	hostSecret := randomMarker("host")
	hostAddr := hostListener(t, hostSecret)
	oneOffSecret := randomMarker("one-off")
	l := startListener(t, tp, oneOffSecret)
	defer l.stop(t)
	if got := dialAndRead("127.0.0.1:" + l.port); got != "connected: "+oneOffSecret {
		t.Errorf("the host did not reach the one-off's 127.0.0.1:%s: %s", l.port, got)
	}
	if got := runHelper(t, tp, "dial", netHelperAddr, hostAddr); got != "connected: "+hostSecret {
		t.Errorf("the one-off did not reach the host's %s: %s", hostAddr, got)
	}
}

// noNetnsEnv, when set, makes this test binary a platform in a user
// namespace whose limit of network namespaces is 0, as on a host that
// allows none, with its state dir there: it writes its URL and what it
// reports on stdout, serves until stdin ends and logs on stderr.
const noNetnsEnv = "PLATFORM_TEST_NO_NETNS_STATE_DIR"

func runNoNetnsPlatformIfRequested() {
	stateDir, ok := os.LookupEnv(noNetnsEnv)
	if !ok {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Written in this user namespace only: the host's limit stays.
	if err := os.WriteFile("/proc/sys/user/max_net_namespaces", []byte("0\n"), 0); err != nil {
		fail(err)
	}
	p, err := New(Config{APIToken: testAPIToken, StateDir: stateDir, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	go p.Serve(ln)
	fmt.Printf("http://%s isolated=%v own_network=%v\n", ln.Addr(), p.Isolated(), p.OwnNetwork())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		fail(err)
	}
	os.Exit(0)
}

// TestNoNetworkNamespace: where the host lets no network namespace be made
// (here a user namespace whose limit of them is 0), the platform still
// isolates its one-offs otherwise, gives them the host's network, says so
// once in a warning, and OwnNetwork is false.
func TestNoNetworkNamespace(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testkit.Buffer
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), noNetnsEnv+"="+t.TempDir(), "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = &stderr
	// Root of the new user namespace is root, nobody is nobody.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappingsEnableSetgroups: true,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("platform log:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("platform did not start: %v\n%s", err, stderr.String())
	}
	base, report, _ := strings.Cut(strings.TrimSpace(line), " ")
	if report != "isolated=true own_network=false" {
		t.Errorf("the platform reports %q, want isolated=true own_network=false", report)
	}
	tp := &testPlatform{t: t, base: base, http: &http.Client{}}
	tp.token = tp.exchange(testAPIToken)
	hostSecret := randomMarker("host")
	hostAddr := hostListener(t, hostSecret)
	if got := runHelper(t, tp, "dial", netHelperAddr, hostAddr); got != "connected: "+hostSecret {
		t.Errorf("the one-off did not get the host's network: %s", got)
	}
	if got := runHelper(t, tp, "loopback"); !strings.HasPrefix(got, "loopback ok\n") {
		t.Errorf("loopback: %q", got)
	}
	// The host's network namespace, but a PID namespace of its own, as
	// nobody.
	hostNet, err1 := os.Readlink("/proc/self/ns/net")
	hostPID, err2 := os.Readlink("/proc/self/ns/pid")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	o := tp.run("demo", "readlink /proc/self/ns/net /proc/self/ns/pid; id -u", false, nil)
	_, br := o.attach()
	out := strings.Fields(readAll(t, br))
	if len(out) != 3 || out[0] != hostNet || out[1] == hostPID || out[2] != "65534" {
		t.Errorf("net and pid namespaces and uid of the one-off: %q; the host's: %s %s", out, hostNet, hostPID)
	}
	o.wait()
	stdin.Close()
	waitExit := make(chan error, 1)
	go func() { waitExit <- cmd.Wait() }()
	select {
	case err := <-waitExit:
		if err != nil {
			t.Errorf("platform: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("platform did not stop")
	}
	// Its log is whole once it has exited.
	if n := strings.Count(stderr.String(), "one-offs share the host's network"); n != 1 {
		t.Errorf("%d warnings that one-offs share the host's network, want 1", n)
	}
}

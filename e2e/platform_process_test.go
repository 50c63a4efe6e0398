package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"sshbridge/internal/testkit"
)

// platformProcess is `bridge platform` running as its own process.
type platformProcess struct {
	url    string        // base URL of its API, http://host:port
	pid    int           // its process, leader of its own process group
	log    *syncBuffer   // what it wrote on stderr so far
	exited chan struct{} // closed once it exited and its log is read
	stop   func()        // SIGTERM, SIGKILL after 15 s; returns once it exited
}

// startPlatformProcess starts `bridge platform` on a free loopback port
// with args and the API token canaryToken; see startPlatformProcessEnv.
func startPlatformProcess(t testing.TB, args ...string) *platformProcess {
	t.Helper()
	return startPlatformProcessEnv(t, nil, args...)
}

// startPlatformProcessEnv starts `bridge platform --listen 127.0.0.1:0`
// with args, ONEOFF_API_TOKEN=canaryToken and then env ("NAME=value", which
// may set another token), and waits until it has written its address to
// its --listen-address-file (set through PLATFORM_LISTEN_ADDRESS_FILE). It
// is stopped at the end of the test; its log is shown if the test failed.
func startPlatformProcessEnv(t testing.TB, env []string, args ...string) *platformProcess {
	t.Helper()
	addressFile := filepath.Join(t.TempDir(), "listen-address")
	cmd := exec.Command(binary, append([]string{"platform", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "ONEOFF_API_TOKEN="+canaryToken, "PLATFORM_LISTEN_ADDRESS_FILE="+addressFile)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &platformProcess{pid: cmd.Process.Pid, log: &syncBuffer{}, exited: make(chan struct{})}
	go func() {
		// Read to the end before Wait, which closes the pipe.
		io.Copy(p.log, stderr)
		cmd.Wait()
		close(p.exited)
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(15 * time.Second):
				syscall.Kill(-p.pid, syscall.SIGKILL)
				<-p.exited
			}
		})
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("platform log:\n%s", p.log.String())
		}
	})
	addr, err := testkit.WaitAddressFile(addressFile, p.exited, 30*time.Second)
	if err != nil {
		t.Fatalf("bridge platform: %v:\n%s", err, p.log.String())
	}
	p.url = "http://" + addr
	return p
}

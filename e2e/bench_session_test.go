package e2e

// The benchmarks of SSH sessions: each compares the bridge with OpenSSH's
// sshd started in the same run, or checks an absolute memory budget, and
// fails when its target is missed. Run them with
//
//	go test -run '^$' -bench 'SessionSetup|Throughput|IdleConnectionMemory|ShellSessionMemory' -benchtime 1x -timeout 30m ./e2e/
//
// and record the figures in BENCHMARKS.md.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Targets of issue 3, and issue 17's for idle connections.
const (
	setupRatioMax      = 1.0 // bridge set-up time over sshd's
	throughputRatioMin = 0.8 // bridge MB/s over sshd's
	idleConnKiBMax     = 48  // bridge RSS per idle authenticated connection, over idleConns
	shellSessionKiBMax = 256 // bridge RSS per open shell session
)

const (
	setupRuns      = 20      // alternating runs of each server per iteration
	throughputRuns = 5       // a run now and then is slow on this machine: the median of 5 rides over one or two
	throughputSize = 1 << 30 // head -c 1G
	idleConns      = 1000
	idleRounds     = 5 // bridges measured per iteration: the heap's GC headroom moves one figure by a few KiB
	shellSessions  = 200
)

// benchArgs run the bridge as it runs by default: the harness asks for
// debug logs, which cost time per session that users do not pay.
var benchArgs = []string{"--log-level", "info"}

// sshCommand builds an OpenSSH client command for one server.
type sshCommand func(ctx context.Context, extra []string, command ...string) *exec.Cmd

func bridgeCommand(br *Bridge) sshCommand {
	return func(ctx context.Context, extra []string, command ...string) *exec.Cmd {
		return br.SSH(ctx, "demo-app", extra, command...)
	}
}

// runTimed runs command through ssh with stdout to /dev/null and returns
// the wall time; any failure ends the benchmark.
func runTimed(b *testing.B, name string, ssh sshCommand, command string) time.Duration {
	b.Helper()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := ssh(ctx, nil, command)
	var stderr bytes.Buffer
	// An *os.File goes to the client as is: no copy through this process.
	cmd.Stdout, cmd.Stderr = devNull, &stderr
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s: ssh %q: %v\n%s", name, command, err, stderr.String())
	}
	return d
}

var (
	kexRE    = regexp.MustCompile(`kex: algorithm: (\S+)`)
	cipherRE = regexp.MustCompile(`kex: server->client cipher: (\S+) MAC: (\S+)`)
)

// negotiated returns the key exchange, cipher and MAC the client chose,
// from `ssh -v`.
func negotiated(b *testing.B, ssh sshCommand) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := ssh(ctx, []string{"-v"}, "true").CombinedOutput()
	if err != nil {
		b.Fatalf("ssh -v: %v\n%s", err, out)
	}
	k, c := kexRE.FindSubmatch(out), cipherRE.FindSubmatch(out)
	if k == nil || c == nil {
		b.Fatalf("no key exchange or cipher in ssh -v output:\n%s", out)
	}
	return fmt.Sprintf("kex %s, cipher %s, MAC %s", k[1], c[1], c[2])
}

func median(ds []float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// BenchmarkSessionSetup compares the median wall time of `ssh … true`
// through the bridge (a one-off started, run and waited for) with the same
// through sshd. Both negotiate their defaults; OpenSSH's client picks a
// slower key exchange with sshd (sntrup761x25519) than with the bridge
// (curve25519), so a third series, sshd held to curve25519-sha256 by the
// client, is reported beside them for information.
func BenchmarkSessionSetup(b *testing.B) {
	br := StartBridge(b, Options{Args: benchArgs})
	d := StartSSHD(b, br.Key)
	sameKex := func(ctx context.Context, extra []string, command ...string) *exec.Cmd {
		return d.SSH(ctx, append([]string{"-o", "KexAlgorithms=curve25519-sha256"}, extra...), command...)
	}
	servers := []struct {
		name string
		ssh  sshCommand
	}{{"bridge", bridgeCommand(br)}, {"sshd", d.SSH}, {"sshd-curve25519", sameKex}}
	for _, s := range servers {
		b.Logf("%s: %s", s.name, negotiated(b, s.ssh))
	}
	times := map[string][]float64{}
	for b.Loop() {
		for i := range setupRuns {
			// Rotate which goes first, so that none always runs right
			// after another's teardown.
			for j := range servers {
				s := servers[(i+j)%len(servers)]
				times[s.name] = append(times[s.name], runTimed(b, s.name, s.ssh, "true").Seconds()*1000)
			}
		}
	}
	bridgeMs, sshdMs, sameKexMs := median(times["bridge"]), median(times["sshd"]), median(times["sshd-curve25519"])
	ratio := bridgeMs / sshdMs
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(bridgeMs, "bridge-ms")
	b.ReportMetric(sshdMs, "sshd-ms")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(sameKexMs, "sshd-curve25519-ms")
	b.ReportMetric(bridgeMs/sameKexMs, "ratio-curve25519")
	b.Logf("median of %d runs: bridge %.1f ms, sshd %.1f ms, ratio %.2f (target ≤ %.1f); sshd with curve25519 %.1f ms, ratio %.2f",
		len(times["bridge"]), bridgeMs, sshdMs, ratio, setupRatioMax, sameKexMs, bridgeMs/sameKexMs)
	if ratio > setupRatioMax {
		b.Errorf("session set-up: bridge %.1f ms over sshd %.1f ms = %.2f, want at most %.1f", bridgeMs, sshdMs, ratio, setupRatioMax)
	}
}

// BenchmarkThroughput compares the rate of `head -c 1G /dev/zero` through
// an exec session, the client's stdout on /dev/null. It also reports the
// CPU time each server's side (the server and the command's processes)
// spent per GiB: on a shared machine the rates move with the load, the CPU
// cost much less.
func BenchmarkThroughput(b *testing.B) {
	br := StartBridge(b, Options{Args: benchArgs})
	d := StartSSHD(b, br.Key)
	servers := []struct {
		name string
		ssh  sshCommand
		pid  int
	}{{"bridge", bridgeCommand(br), br.cmd.Process.Pid}, {"sshd", d.SSH, d.Pid}}
	for _, s := range servers {
		b.Logf("%s: %s", s.name, negotiated(b, s.ssh))
	}
	waitForChildren(b, d.Pid)
	command := fmt.Sprintf("head -c %d /dev/zero", throughputSize)
	rates := map[string][]float64{}
	cpu := map[string]float64{}
	for b.Loop() {
		for i := range throughputRuns {
			for j := range servers {
				s := servers[(i+j)%2]
				cpu0 := cpuSeconds(b, s.pid)
				t := runTimed(b, s.name, s.ssh, command)
				if s.pid == d.Pid {
					// sshd counts a connection's CPU once it has reaped it.
					waitForChildren(b, d.Pid)
				}
				cpu[s.name] += cpuSeconds(b, s.pid) - cpu0
				rates[s.name] = append(rates[s.name], throughputSize/1e6/t.Seconds())
			}
		}
	}
	bridgeRate, sshdRate := median(rates["bridge"]), median(rates["sshd"])
	ratio := bridgeRate / sshdRate
	gib := float64(len(rates["bridge"])) * throughputSize / (1 << 30)
	bridgeCPU, sshdCPU := cpu["bridge"]/gib, cpu["sshd"]/gib
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(bridgeRate, "bridge-MB/s")
	b.ReportMetric(sshdRate, "sshd-MB/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(bridgeCPU, "bridge-cpu-s/GiB")
	b.ReportMetric(sshdCPU, "sshd-cpu-s/GiB")
	b.Logf("median of %d runs: bridge %.0f MB/s %.0f, sshd %.0f MB/s %.0f, ratio %.2f (target ≥ %.1f)",
		len(rates["bridge"]), bridgeRate, rates["bridge"], sshdRate, rates["sshd"], ratio, throughputRatioMin)
	b.Logf("server-side CPU per GiB: bridge %.2f s, sshd %.2f s", bridgeCPU, sshdCPU)
	if ratio < throughputRatioMin {
		b.Errorf("throughput: bridge %.0f MB/s over sshd %.0f MB/s = %.2f, want at least %.1f", bridgeRate, sshdRate, ratio, throughputRatioMin)
	}
}

// cpuSeconds is the CPU time of a process and of its children it has
// reaped, from /proc/PID/stat.
func cpuSeconds(b *testing.B, pid int) float64 {
	b.Helper()
	return procCPUSeconds(b, pid, true)
}

// procCPUSeconds is the CPU time of a process (utime and stime), with
// that of the children it has reaped (cutime and cstime) when children
// is set, from /proc/PID/stat.
func procCPUSeconds(b *testing.B, pid int, children bool) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which may hold spaces, start at
	// the state (field 3); utime, stime, cutime, cstime are fields 14-17.
	_, rest, _ := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	var ticks int64
	last := 13
	if children {
		last = 15
	}
	for _, v := range f[11:last] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	const clockTicks = 100 // USER_HZ, fixed on Linux
	return float64(ticks) / clockTicks
}

// waitForChildren waits until pid has no child process left.
func waitForChildren(b *testing.B, pid int) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(childrenOf(pid)) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("process %d still has children %v after 10 s", pid, childrenOf(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(raw), ") ")
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			k, _ := strconv.Atoi(e.Name())
			kids = append(kids, k)
		}
	}
	return kids
}

// BenchmarkIdleConnectionMemory measures the bridge's RSS growth per idle
// authenticated connection, with idleConns held open at once: the median
// of idleRounds bridges, each started afresh. The bridge's pre-
// authentication caps are raised explicitly: all the connections come
// from one address, a few at a time, and none of them should be dropped
// or slowed by MaxStartups, PerSourceMaxStartups or a penalty. OpenSSH's
// sshd holding as many is measured beside it, for information: its
// processes' proportional set size (PSS, which shares each shared page
// among the processes mapping it), since it runs two processes per
// connection.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	raiseFileLimit(b, 2*idleConns+200)
	caps := []string{
		"--max-startups", strconv.Itoa(2 * idleConns),
		"--per-source-max-startups", strconv.Itoa(2 * idleConns),
		"--per-source-penalties", "no",
	}
	var perConn, sshdPerConn []float64
	for b.Loop() {
		for range idleRounds {
			br := StartBridge(b, Options{Args: append(slices.Clone(benchArgs), caps...)})
			kib := idleGrowth(b, newDialer(b, br, "demo-app"), func() int { return settledRSS(b, br.cmd.Process.Pid) })
			b.Logf("bridge: %.1f KiB RSS per idle connection (target ≤ %d)", kib, idleConnKiBMax)
			perConn = append(perConn, kib)
			br.Stop()
		}
		// sshd's own caps raised as the bridge's: its MaxStartups
		// (10:30:100) drops connections whose authentication its
		// listener has not yet heard of.
		n := strconv.Itoa(2 * idleConns)
		d := StartSSHD(b, clientKey(b, "default"), "MaxStartups "+n, "PerSourceMaxStartups "+n)
		dial := newClientDialer(b, net.JoinHostPort(d.Host, d.Port), d.User, d.Key, d.KnownHosts)
		kib := idleGrowth(b, dial, func() int { return settledTreePSS(b, d.Pid) })
		b.Logf("sshd: %.1f KiB PSS per idle connection (all its processes)", kib)
		sshdPerConn = append(sshdPerConn, kib)
	}
	kib, sshdKiB := median(perConn), median(sshdPerConn)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(kib, "KiB/conn")
	b.ReportMetric(sshdKiB, "sshd-KiB/conn")
	b.Logf("median of %d: bridge %.1f KiB RSS per idle connection %.1f (target ≤ %d); sshd %.1f KiB PSS", len(perConn), kib, perConn, idleConnKiBMax, sshdKiB)
	if kib > idleConnKiBMax {
		b.Errorf("idle connection memory: %.1f KiB each, want at most %d", kib, idleConnKiBMax)
	}
}

// idleGrowth opens idleConns authenticated connections with dial after a
// warm-up, checks each is alive with a keepalive, closes them and returns
// the growth of memory (read by mem, in KiB) per connection.
func idleGrowth(b *testing.B, dial func() (*gossh.Client, error), mem func() int) float64 {
	b.Helper()
	warmUp(b, dial)
	before := mem()
	clients := dialMany(b, dial, idleConns)
	defer closeAll(clients)
	after := mem()
	for _, c := range clients {
		// Any answer shows the connection is still up.
		if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			b.Fatalf("a held connection broke: %v", err)
		}
	}
	return float64(after-before) / idleConns
}

// settledTreePSS is the proportional set size in KiB of a process and
// all its descendants, read as settledRSS reads one process.
func settledTreePSS(b *testing.B, pid int) int {
	b.Helper()
	time.Sleep(2 * time.Second) // not waiting for a port: letting the processes settle
	first := treePSS(b, pid)
	time.Sleep(time.Second)
	return min(first, treePSS(b, pid))
}

func treePSS(b *testing.B, pid int) int {
	b.Helper()
	total := 0
	for _, p := range append([]int{pid}, descendantsOf(pid)...) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue // gone meanwhile
		}
		for line := range strings.SplitSeq(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				if err != nil {
					b.Fatalf("Pss %q: %v", rest, err)
				}
				total += kib
			}
		}
	}
	return total
}

// descendantsOf lists a process's children, their children and so on,
// from one read of /proc.
func descendantsOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	kids := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(raw), ") ")
		if f := strings.Fields(rest); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			kids[ppid] = append(kids[ppid], p)
		}
	}
	var out []int
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		out = append(out, kids[queue[0]]...)
		queue = append(queue, kids[queue[0]]...)
	}
	return out
}

// BenchmarkShellSessionMemory measures the bridge's RSS growth per open
// shell session (a pty and a shell in a one-off, all of one key, whose
// limit on one-offs is raised with the platform's), on connections opened
// beforehand: with the embedded platform, whose per-one-off state is in the
// bridge's process, and with the platform as a process of its own. The
// one-offs' own processes are not counted.
func BenchmarkShellSessionMemory(b *testing.B) {
	raiseFileLimit(b, 4*shellSessions+200)
	quota := strconv.Itoa(shellSessions + 50)
	b.Run("embedded", func(b *testing.B) {
		var perSession []float64
		for b.Loop() {
			br := StartBridge(b, Options{Args: append(slices.Clone(benchArgs), "--max-one-offs-per-key", quota,
				"--platform-app-quota", quota, "--platform-total-quota", quota)})
			kib, _ := shellSessionGrowth(b, br, nil)
			perSession = append(perSession, kib)
			br.Stop()
		}
		reportSessionMemory(b, median(perSession))
	})
	b.Run("separate-platform", func(b *testing.B) {
		var perSession, platformPer []float64
		for b.Loop() {
			p := startPlatformProcess(b, "--app-quota", quota, "--total-quota", quota, "--log-level", "info")
			br := StartBridge(b, Options{
				Args: append(slices.Clone(benchArgs), "--api-url", p.url, "--max-one-offs-per-key", quota),
				Env:  []string{"ONEOFF_API_TOKEN=" + canaryToken},
			})
			kib, platformKiB := shellSessionGrowth(b, br, p)
			perSession = append(perSession, kib)
			platformPer = append(platformPer, platformKiB)
			br.Stop()
			p.stop()
		}
		b.ReportMetric(median(platformPer), "platform-KiB/session")
		reportSessionMemory(b, median(perSession))
	})
}

func reportSessionMemory(b *testing.B, kib float64) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(kib, "KiB/session")
	if kib > shellSessionKiBMax {
		b.Errorf("shell session memory: %.1f KiB each, want at most %d", kib, shellSessionKiBMax)
	}
}

// shellSessionGrowth opens shellSessions connections, then a shell session
// on each, and returns the bridge's RSS growth per session and, with a
// separate platform process p, that process's.
func shellSessionGrowth(b *testing.B, br *Bridge, p *platformProcess) (bridgeKiB, platformKiB float64) {
	dial := newDialer(b, br, "demo-app")
	warmUp(b, dial)
	// A first shell session starts what lives for the whole process.
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	first := openShell(b, c, 0)
	first.close()
	c.Close()

	clients := dialMany(b, dial, shellSessions)
	defer closeAll(clients)
	before := settledRSS(b, br.cmd.Process.Pid)
	var platformBefore int
	if p != nil {
		platformBefore = settledRSS(b, p.pid)
	}
	shells := make([]*shell, len(clients))
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				sh, err := startShell(clients[i], i+1)
				if err != nil {
					errs <- fmt.Errorf("shell %d: %w", i+1, err)
					continue
				}
				shells[i] = sh
			}
		})
	}
	for i := range clients {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, sh := range shells {
			if sh != nil {
				sh.close()
			}
		}
	}()
	close(errs)
	if err := <-errs; err != nil {
		if p != nil {
			b.Logf("platform log:\n%s", tail(p.log.String(), 30))
		}
		b.Fatal(err)
	}
	after := settledRSS(b, br.cmd.Process.Pid)
	bridgeKiB = float64(after-before) / float64(len(shells))
	b.Logf("bridge RSS %d KiB with %d connections, %d KiB with a shell on each: %.1f KiB per session (target ≤ %d)",
		before, len(clients), after, bridgeKiB, shellSessionKiBMax)
	if p != nil {
		platformAfter := settledRSS(b, p.pid)
		platformKiB = float64(platformAfter-platformBefore) / float64(len(shells))
		b.Logf("platform process RSS %d KiB before, %d KiB after: %.1f KiB per one-off", platformBefore, platformAfter, platformKiB)
	}
	return bridgeKiB, platformKiB
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// shell is an open interactive session whose output is drained.
type shell struct {
	s       *gossh.Session
	drained chan struct{}
}

func (sh *shell) close() {
	sh.s.Close()
	<-sh.drained
}

func openShell(b *testing.B, c *gossh.Client, n int) *shell {
	b.Helper()
	sh, err := startShell(c, n)
	if err != nil {
		b.Fatal(err)
	}
	return sh
}

// startShell opens a pty and a shell and returns once the shell has run a
// command: its one-off is up and attached.
func startShell(c *gossh.Client, n int) (*shell, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.Stderr = io.Discard
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{gossh.ECHO: 1}); err != nil {
		s.Close()
		return nil, fmt.Errorf("pty: %w", err)
	}
	if err := s.Shell(); err != nil {
		s.Close()
		return nil, fmt.Errorf("shell: %w", err)
	}
	// The sum is in the output only, not in the echo of the command.
	want := []byte(strconv.Itoa(n+1000) + "ready")
	fmt.Fprintf(stdin, "echo $((%d+1000))ready\n", n)
	sh := &shell{s: s, drained: make(chan struct{})}
	// What came before the answer: on failure, the one-off's last words.
	var early []byte
	ready := make(chan bool, 1)
	go func() {
		defer close(sh.drained)
		var seen []byte
		buf := make([]byte, 4096)
		found := false
		for {
			k, err := stdout.Read(buf)
			if !found {
				seen = append(seen, buf[:k]...)
				if bytes.Contains(seen, want) {
					found = true
					seen = nil
					ready <- true
				}
			}
			if err != nil {
				if !found {
					early = seen
					ready <- false
				}
				return
			}
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			s.Close()
			<-sh.drained
			return nil, fmt.Errorf("session ended before the shell answered; its output: %q", early)
		}
	case <-time.After(2 * time.Minute):
		s.Close()
		<-sh.drained
		return nil, errors.New("the shell did not answer within 2 minutes")
	}
	return sh, nil
}

// newDialer returns a function dialing br as app with x/crypto's client
// and the default test key.
func newDialer(b *testing.B, br *Bridge, app string) func() (*gossh.Client, error) {
	b.Helper()
	return newClientDialer(b, br.Addr, app, br.Key, br.KnownHosts)
}

// newClientDialer returns a function dialing addr as user with x/crypto's
// client, the private key in keyFile and the host key of knownHosts' first
// line.
func newClientDialer(b *testing.B, addr, user, keyFile, knownHosts string) func() (*gossh.Client, error) {
	b.Helper()
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(raw)
	if err != nil {
		b.Fatal(err)
	}
	known, err := os.ReadFile(knownHosts)
	if err != nil {
		b.Fatal(err)
	}
	_, _, hostKey, _, _, err := gossh.ParseKnownHosts(known)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &gossh.ClientConfig{
		User:            user,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(hostKey),
		Timeout:         30 * time.Second,
	}
	return func() (*gossh.Client, error) { return gossh.Dial("tcp", addr, cfg) }
}

// warmUp opens and closes a few connections, so that what the bridge sets
// up once (handshake tables, buffers pools) is in the baseline.
func warmUp(b *testing.B, dial func() (*gossh.Client, error)) {
	b.Helper()
	for range 10 {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// dialMany opens n authenticated connections, a few at a time, as clients
// arriving together would.
func dialMany(b *testing.B, dial func() (*gossh.Client, error), n int) []*gossh.Client {
	b.Helper()
	clients := make([]*gossh.Client, n)
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				c, err := dial()
				if err != nil {
					errs <- err
					continue
				}
				clients[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(clients)
		b.Fatalf("dial: %v", err)
	}
	return clients
}

func closeAll(clients []*gossh.Client) {
	for _, c := range clients {
		if c != nil {
			c.Close()
		}
	}
}

// raiseFileLimit lets this process hold n descriptors; the bridge, started
// after, inherits the limit.
func raiseFileLimit(b *testing.B, n uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		b.Fatalf("RLIMIT_NOFILE hard limit %d is below the %d descriptors this benchmark holds", lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
}

// settledRSS reads a process's RSS in KiB once its memory has settled:
// two readings a second apart, after a pause for the collector and the
// connections' last writes, the lower of them.
func settledRSS(b *testing.B, pid int) int {
	b.Helper()
	time.Sleep(2 * time.Second) // not waiting for a port: letting a heap settle
	first := rssKiB(b, pid)
	time.Sleep(time.Second)
	return min(first, rssKiB(b, pid))
}

func rssKiB(b *testing.B, pid int) int {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kib
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

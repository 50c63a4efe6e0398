package main

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// load is one run: its configuration, the client settings every
// connection shares, and what it counts.
type load struct {
	cfg     *config
	signer  ssh.Signer
	hostKey ssh.HostKeyCallback
	algs    []string // host key algorithms known_hosts has for the address

	mu       sync.Mutex
	setups   []time.Duration
	reasons  map[string]int
	execs    int
	shells   int
	uploads  int
	bytes    int64
	failures int

	// Sessions under way (from the dial to the close) and open (from
	// the first byte of output to the close), now and at most.
	inFlight, peakInFlight atomic.Int64
	open, peakOpen         atomic.Int64
}

func newLoad(cfg *config) (*load, error) {
	raw, err := os.ReadFile(cfg.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("-key %s: %w", cfg.keyFile, err)
	}
	hk, err := knownhosts.New(cfg.knownHosts)
	if err != nil {
		return nil, fmt.Errorf("-known-hosts: %w", err)
	}
	algs, err := knownAlgorithms(hk, cfg.knownHosts, cfg.addr)
	if err != nil {
		return nil, err
	}
	return &load{cfg: cfg, signer: signer, hostKey: hk, algs: algs, reasons: map[string]int{}}, nil
}

// knownAlgorithms are the host key algorithms of the keys the known_hosts
// callback hk has for addr, which the client asks for, so that the
// server's choice is one the file can check. The keys are those the
// callback reports wanting for a key it does not know (knownhosts.KeyError),
// so hashed lines (OpenSSH's HashKnownHosts, Debian's default) and
// @cert-authority lines count as ssh does.
func knownAlgorithms(hk ssh.HostKeyCallback, file, addr string) ([]string, error) {
	host := knownhosts.Normalize(addr)
	probe, _, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, err
	}
	probeKey, err := ssh.NewPublicKey(probe)
	if err != nil {
		return nil, err
	}
	tcp, _ := net.ResolveTCPAddr("tcp", addr)
	var algs []string
	var ke *knownhosts.KeyError
	if err := hk(addr, tcp, probeKey); errors.As(err, &ke) {
		for _, k := range ke.Want {
			algs = append(algs, k.Key.Type())
		}
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("-known-hosts %s: no key for %s", file, host)
	}
	if algs[0] == ssh.KeyAlgoRSA {
		algs = append(algs, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512)
	}
	return algs, nil
}

// run starts the workers and uploaders and waits for them: new sessions
// start until the duration has passed, and ctx bounds the whole.
func (l *load) run(ctx context.Context) summary {
	began := time.Now()
	until := began.Add(l.cfg.duration)
	var wg sync.WaitGroup
	for w := range l.cfg.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(began.UnixNano())))
			if l.cfg.ramp > 0 {
				if !sleepCtx(ctx, time.Duration(rng.Int64N(int64(l.cfg.ramp)))) {
					return
				}
			}
			user := l.cfg.app
			if l.cfg.apps > 1 {
				user = fmt.Sprintf("%s-%d", l.cfg.app, w%l.cfg.apps+1)
			}
			for n := 0; time.Now().Before(until) && ctx.Err() == nil; n++ {
				shell := rng.Float64() < l.cfg.shellFraction
				hold := time.Duration(rng.Int64N(int64(l.cfg.hold)))
				l.session(ctx, user, w, n, shell, hold)
			}
		}()
	}
	for u := range l.cfg.uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("%s-upload-%d", l.cfg.app, u+1)
			for n := 0; time.Now().Before(until) && ctx.Err() == nil; n++ {
				l.upload(ctx, user, u, n)
			}
		}()
	}
	wg.Wait()
	return l.summarise(time.Since(began))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail counts one failed session or upload under its step and a reason
// with the numbers that differ between sessions (ports, workers) left
// in: the first 50 distinct reasons are kept, the rest counted as one.
func (l *load) fail(step string, err error) {
	reason := step + ": " + err.Error()
	if len(reason) > 200 {
		reason = reason[:200]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	if _, ok := l.reasons[reason]; !ok && len(l.reasons) >= 50 {
		reason = "(other reasons)"
	}
	l.reasons[reason]++
}

// dial connects and authenticates as user, within ctx; the client closes
// when ctx ends.
func (l *load) dial(ctx context.Context, user string) (*ssh.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", l.cfg.addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, l.cfg.addr, &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(l.signer)},
		HostKeyCallback:   l.hostKey,
		HostKeyAlgorithms: l.algs,
	})
	if err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// firstByte notes when the first byte came through it, from when the
// session counts as open in l.
type firstByte struct {
	r  io.Reader
	at time.Time
	l  *load
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.at.IsZero() {
		f.at = time.Now()
		track(&f.l.open, &f.l.peakOpen, +1)
	}
	return n, err
}

// closed ends the session's count as open, if it was.
func (f *firstByte) closed() {
	if !f.at.IsZero() {
		track(&f.l.open, &f.l.peakOpen, -1)
	}
}

// session runs one session of worker w, its n-th: an exec command, or a
// shell on a terminal held for hold.
func (l *load) session(ctx context.Context, user string, w, n int, shell bool, hold time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.stepTimeout)
	defer cancel()
	track(&l.inFlight, &l.peakInFlight, +1)
	defer track(&l.inFlight, &l.peakInFlight, -1)
	start := time.Now()
	client, err := l.dial(ctx, user)
	if err != nil {
		l.fail("connect", cause(ctx, err))
		return
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		l.fail("open session", cause(ctx, err))
		return
	}
	defer s.Close()
	code := n % 4
	token := fmt.Sprintf("load%dx%d", w, n)
	var step string
	var out *firstByte
	if shell {
		step, out, err = l.shell(ctx, s, token, code, hold)
	} else {
		step, out, err = l.exec(s, token, code)
	}
	if err != nil {
		l.fail(step, cause(ctx, err))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setups = append(l.setups, out.at.Sub(start))
	if shell {
		l.shells++
	} else {
		l.execs++
	}
}

// track adds d to n and keeps its highest value in peak.
func track(n, peak *atomic.Int64, d int64) {
	now := n.Add(d)
	for {
		p := peak.Load()
		if now <= p || peak.CompareAndSwap(p, now) {
			return
		}
	}
}

// cause is err, or the reason ctx ended when it did: the step's timeout,
// or the end of the run's grace.
func cause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	return err
}

// exec runs `echo TOKEN; exit CODE` and checks that it printed the token
// alone, nothing on stderr, and exited with the code.
func (l *load) exec(s *ssh.Session, token string, code int) (string, *firstByte, error) {
	stdout, err := s.StdoutPipe()
	if err != nil {
		return "exec", nil, err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	if err := s.Start(fmt.Sprintf("echo %s; exit %d", token, code)); err != nil {
		return "exec", nil, err
	}
	out := &firstByte{r: stdout, l: l}
	defer out.closed()
	got, err := io.ReadAll(out)
	if err != nil {
		return "exec output", nil, err
	}
	if err := checkExit(s.Wait(), code); err != nil {
		return "exec exit status", nil, fmt.Errorf("%w (stderr %q)", err, stderr.String())
	}
	if string(got) != token+"\n" || stderr.Len() > 0 {
		return "exec output", nil, fmt.Errorf("stdout %q, stderr %q; want %q alone", got, stderr.String(), token+"\n")
	}
	return "", out, nil
}

// shell holds a shell on a terminal: it has the shell print the token
// (typed in two halves, so that the terminal's echo of the line does not
// contain it), waits for it, holds the session for hold, then has the
// shell exit with code.
func (l *load) shell(ctx context.Context, s *ssh.Session, token string, code int, hold time.Duration) (string, *firstByte, error) {
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		return "pty", nil, err
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		return "shell", nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return "shell", nil, err
	}
	if err := s.Shell(); err != nil {
		return "shell", nil, err
	}
	half := len(token) / 2
	if _, err := fmt.Fprintf(stdin, "printf '%%s%%s\\n' %s %s\n", token[:half], token[half:]); err != nil {
		return "shell input", nil, err
	}
	out := &firstByte{r: stdout, l: l}
	defer out.closed()
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), token) {
		n, err := out.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			return "shell output", nil, fmt.Errorf("%w before the token; output %q", err, tail(seen.String()))
		}
	}
	if !sleepCtx(ctx, hold) {
		return "shell hold", nil, ctx.Err()
	}
	if _, err := fmt.Fprintf(stdin, "exit %d\n", code); err != nil {
		return "shell input", nil, err
	}
	if _, err := io.Copy(io.Discard, out); err != nil {
		return "shell output", nil, err
	}
	if err := checkExit(s.Wait(), code); err != nil {
		return "shell exit status", nil, err
	}
	return "", out, nil
}

func tail(s string) string {
	if len(s) > 200 {
		return s[len(s)-200:]
	}
	return s
}

// checkExit says whether the session's end, err from Wait, is an exit
// status of code.
func checkExit(err error, code int) error {
	var exit *ssh.ExitError
	switch {
	case err == nil && code == 0:
		return nil
	case err == nil:
		return fmt.Errorf("exit status 0, want %d", code)
	case errors.As(err, &exit) && exit.Signal() == "" && exit.ExitStatus() == code:
		return nil
	default:
		return fmt.Errorf("%w, want exit status %d", err, code)
	}
}

// upload puts a file of random bytes through SFTP as user, then checks in
// a session of the same app that the file delivered to the one-off has
// the hash of what was sent.
func (l *load) upload(ctx context.Context, user string, u, n int) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.stepTimeout)
	defer cancel()
	name := fmt.Sprintf("load-%d-%d.bin", u, n)
	sum, err := l.put(ctx, user, name, uint64(u)<<32|uint64(n))
	if err != nil {
		l.fail("sftp upload", cause(ctx, err))
		return
	}
	if err := l.verify(ctx, user, name, sum); err != nil {
		l.fail("upload check", cause(ctx, err))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uploads++
	l.bytes += l.cfg.uploadSize
}

// put writes name in the SFTP start directory and returns the hex SHA-256
// of what it wrote: -upload-size bytes from a ChaCha8 stream seeded with
// seed.
func (l *load) put(ctx context.Context, user, name string, seed uint64) (string, error) {
	client, err := l.dial(ctx, user)
	if err != nil {
		return "", err
	}
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		return "", err
	}
	defer sc.Close()
	f, err := sc.Create(name)
	if err != nil {
		return "", err
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8(key), l.cfg.uploadSize), h)
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verify runs sha256sum on the delivered file in a new session.
func (l *load) verify(ctx context.Context, user, name, sum string) error {
	client, err := l.dial(ctx, user)
	if err != nil {
		return err
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	path := "/tmp/uploads/" + name
	out, err := s.Output("sha256sum " + path)
	if err != nil {
		return fmt.Errorf("sha256sum: %w (output %q)", err, out)
	}
	if want := sum + "  " + path + "\n"; string(out) != want {
		return fmt.Errorf("delivered file corrupted: sha256sum says %q, sent %s", out, sum)
	}
	return nil
}

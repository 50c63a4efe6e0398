package platform

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spareInits is how many inits wait ready for the next one-offs. An init is
// a Go process whose start costs far more than running `sh -c`; a spare
// takes that cost off the path from attach to first output.
const spareInits = 2

// Bounds on waiting for an init: to be ready in the pool, and for a
// one-off to get a spare before starting an init of its own.
const (
	initReadyTimeout = 10 * time.Second
	spareWait        = time.Second
)

// initProc is a started init waiting for its one-off on conn.
type initProc struct {
	cmd  *exec.Cmd
	conn *net.UnixConn
}

// initPool keeps spare inits, refilled in the background.
type initPool struct {
	r      *runner
	spares chan *initProc
	wait   time.Duration // how long take waits for a spare: spareWait
	refill chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	starting *initProc // the init the loop waits for; close interrupts it
}

// newInitPool starts keeping spares; first, when not nil, is a ready init
// that becomes the first of them.
func newInitPool(r *runner, first *initProc) *initPool {
	ip := &initPool{
		r:      r,
		spares: make(chan *initProc, spareInits),
		wait:   spareWait,
		refill: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if first != nil {
		ip.spares <- first
	}
	go ip.loop()
	ip.refill <- struct{}{}
	return ip
}

func (ip *initPool) loop() {
	defer close(ip.done)
	for {
		select {
		case <-ip.stop:
			return
		case <-ip.refill:
		}
		for len(ip.spares) < cap(ip.spares) {
			select {
			case <-ip.stop:
				return
			default:
			}
			in, err := ip.r.spawnInit()
			if err == nil {
				ip.setStarting(in)
				err = in.awaitReady()
				ip.setStarting(nil)
			}
			if err != nil {
				ip.r.log.Warn("start spare one-off init", "err", err)
				if in != nil {
					in.discard()
				}
				break
			}
			ip.spares <- in
		}
	}
}

// take returns a ready spare init. With none ready it waits a little for
// the one being started, which is sooner than starting another that would
// compete with it for the CPU, then starts its own.
func (ip *initPool) take() (*initProc, error) {
	defer ip.wake()
	select {
	case in := <-ip.spares:
		return in, nil
	default:
	}
	ip.wake()
	t := time.NewTimer(ip.wait)
	defer t.Stop()
	select {
	case in := <-ip.spares:
		return in, nil
	case <-t.C:
		return ip.r.spawnInit()
	}
}

func (ip *initPool) setStarting(in *initProc) {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	select {
	case <-ip.stop:
		if in != nil {
			in.conn.Close() // closing: fail its wait at once
		}
	default:
	}
	ip.starting = in
}

func (ip *initPool) wake() {
	select {
	case ip.refill <- struct{}{}:
	default:
	}
}

// close stops refilling and kills the spares.
func (ip *initPool) close() {
	ip.once.Do(func() {
		ip.mu.Lock()
		close(ip.stop)
		if ip.starting != nil {
			ip.starting.conn.Close()
		}
		ip.mu.Unlock()
		<-ip.done
		for {
			select {
			case in := <-ip.spares:
				in.discard()
			default:
				return
			}
		}
	})
}

// spawnInit starts an init in new PID and mount namespaces (and a user
// namespace when not root, and a network namespace unless one-offs have the
// host's), waiting on a socket for its one-off.
func (r *runner) spawnInit() (*initProc, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("init socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "init"), os.NewFile(uintptr(fds[1]), "init")
	defer theirs.Close()
	plan, err := json.Marshal(r.plan)
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("init plan: %w", err)
	}
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("init socket: %w", err)
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{initArg0},
		Dir:  "/",
		// GORACE: a race-enabled build would otherwise sleep a second at exit.
		Env:        []string{initEnvVar + "=1", protectEnvVar + "=" + string(plan), "GORACE=atexit_sleep_ms=0"},
		ExtraFiles: []*os.File{theirs}, // fd 3: initSocketFD
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL, // the platform gone, the tree goes too
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		},
	}
	if r.plan.OwnNetwork {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNET
	}
	if r.isolation == isolationUserNS {
		userNSAttr(cmd.SysProcAttr)
	}
	if err := cmd.Start(); err != nil {
		c.Close()
		return nil, fmt.Errorf("start one-off init: %w", err)
	}
	return &initProc{cmd: cmd, conn: c.(*net.UnixConn)}, nil
}

// send hands the init its one-off: the spec, the stdio descriptors and
// the locked dir, which the init keeps open while it lives.
func (in *initProc) send(s initSpec, fds [4]*os.File) error {
	body, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("send init spec: %w", err)
	}
	head := binary.BigEndian.AppendUint64(nil, uint64(len(body)))
	rights := unix.UnixRights(int(fds[0].Fd()), int(fds[1].Fd()), int(fds[2].Fd()), int(fds[3].Fd()))
	_ = in.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	defer in.conn.Close()
	if _, _, err := in.conn.WriteMsgUnix(head, rights, nil); err != nil {
		return fmt.Errorf("send init spec: %w", err)
	}
	if _, err := in.conn.Write(body); err != nil {
		return fmt.Errorf("send init spec: %w", err)
	}
	return nil
}

// awaitReady waits for the byte an init sends when it is ready; an init
// that cannot serve says why instead.
func (in *initProc) awaitReady() error {
	_ = in.conn.SetReadDeadline(time.Now().Add(initReadyTimeout))
	b := make([]byte, 1)
	if _, err := in.conn.Read(b); err != nil {
		return fmt.Errorf("one-off init not ready: %w", err)
	}
	switch b[0] {
	case initReady:
		return in.conn.SetReadDeadline(time.Time{})
	case initFailed:
		why, _ := io.ReadAll(io.LimitReader(in.conn, 4<<10))
		return fmt.Errorf("one-off init: %s", why)
	default:
		return fmt.Errorf("one-off init not ready: unexpected byte %#x", b[0])
	}
}

// discard kills an init that will not be used and reaps it.
func (in *initProc) discard() {
	in.conn.Close()
	_ = in.cmd.Process.Kill()
	_ = in.cmd.Wait()
}

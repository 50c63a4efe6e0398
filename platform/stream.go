package platform

import (
	"bufio"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// lingerAfterExit bounds how long the stream waits for the client to close
// after the process exited and its output was sent. Closing at once while
// client bytes are unread would send a reset that can destroy output the
// client has not read yet.
const lingerAfterExit = 2 * time.Second

// Copy buffers: large, so a bulk transfer costs few system calls.
const (
	outBufSize = 256 << 10
	inBufSize  = 64 << 10
	// smallBufSize is where both buffers start.
	smallBufSize = 4 << 10
)

// loopbackSendBuffer is the send buffer asked for an attach stream whose
// client is on this host (the kernel doubles it), and never less than
// loopbackSendSegments of the connection's segments. Loopback's round trip
// is microseconds, so a few segments in flight keep it full, while the
// megabytes TCP's autotuning grows to let the output leave the CPU caches
// before the client reads it: the cap measured 0.05-0.15 more of a local
// pipe's rate, with less CPU per byte (BENCHMARKS.md). A buffer of two
// segments (32 KiB asked, with loopback's 32 KiB segments) makes TCP wait
// on delayed acknowledgements and the stream crawl at 2 MiB/s; four ran
// at full rate, eight are the floor.
const (
	loopbackSendBuffer   = 128 << 10
	loopbackSendSegments = 4
)

// sizeSendBuffer caps conn's send buffer when its client is on this host.
// Remote clients keep autotuning, which sizes the buffer to their path.
func sizeSendBuffer(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	remote, ok := tc.RemoteAddr().(*net.TCPAddr)
	if !ok || !remote.IP.IsLoopback() {
		return
	}
	size := loopbackSendBuffer
	if rc, err := tc.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if mss, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG); err == nil {
				size = max(size, loopbackSendSegments*mss)
			}
		})
	}
	_ = tc.SetWriteBuffer(size)
}

// stream pumps the one-off's output to conn and conn to its input until the
// process has exited and all its output is written, then closes conn.
func (o *oneOff) stream(proc *process, conn net.Conn, br *bufio.Reader) {
	defer o.p.sessions.Done()
	sizeSendBuffer(conn)
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		o.copyIn(proc, conn, br)
	}()
	o.copyOut(proc, conn)
	<-proc.done
	_ = proc.in.Close() // frees a copyIn blocked on a full terminal
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(lingerAfterExit))
	<-inDone
	_ = conn.Close()
	_ = proc.out.Close()
}

// copyOut sends the merged output until the tree is gone (EOF on a pipe,
// EIO on a terminal). A plain copy through a large buffer: splice(2) from
// the pipe to the socket measured slower on loopback.
func (o *oneOff) copyOut(proc *process, conn net.Conn) {
	// A small buffer first, grown to outBufSize once a read fills it: an
	// idle stream (a connection-mode agent waiting) keeps little memory.
	buf := make([]byte, smallBufSize)
	for {
		n, err := proc.out.Read(buf)
		full := n == len(buf)
		if n > 0 {
			o.touch()
			if _, werr := conn.Write(buf[:n]); werr != nil {
				o.end(endClientGone)
				return
			}
			o.touch()
		}
		if err != nil {
			return
		}
		if full && len(buf) < outBufSize {
			buf = make([]byte, outBufSize)
		}
	}
}

// copyIn feeds the client's bytes to the process. In pipe mode EOF is the
// client's half-close and closes stdin; otherwise a read error or EOF while
// the process runs means the client is gone, and the tree is killed.
func (o *oneOff) copyIn(proc *process, conn net.Conn, br *bufio.Reader) {
	buf := make([]byte, smallBufSize)
	stdinOpen := true
	for {
		n, err := br.Read(buf)
		if n > 0 {
			o.touch()
			if stdinOpen {
				if _, werr := proc.in.Write(buf[:n]); werr != nil {
					stdinOpen = false // the process closed its stdin or ended
				}
			}
		}
		if n == len(buf) && len(buf) < inBufSize {
			buf = make([]byte, inBufSize)
		}
		if err == nil {
			continue
		}
		switch {
		case proc.exited():
		case errors.Is(err, io.EOF) && proc.pty == nil:
			_ = proc.in.Close()
			o.watchLocalPeer(proc, conn)
		default:
			o.end(endClientGone)
		}
		return
	}
}

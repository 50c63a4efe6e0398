package platform

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// spliceChunk is the most one splice call moves.
const spliceChunk = 1 << 20

var (
	errNoSplice = errors.New("splice not possible")
	errWrite    = errors.New("write to client")
)

// spliceOut moves a pipe's bytes to a socket inside the kernel, sparing the
// two copies through user space that cost throughput on a busy host. It
// calls seen after each chunk and returns nil at EOF, an errWrite error when
// the socket fails, or errNoSplice when splice cannot be used (nothing
// moved then). Descriptors are used only inside their RawConn callbacks, so
// a concurrent Close cannot make them point elsewhere.
func spliceOut(pipe *os.File, conn net.Conn, seen func()) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return errNoSplice
	}
	dst, err := sc.SyscallConn()
	if err != nil {
		return errNoSplice
	}
	src, err := pipe.SyscallConn()
	if err != nil {
		return errNoSplice
	}
	splice := func(pfd, sfd uintptr) (int64, error) {
		return unix.Splice(int(pfd), nil, int(sfd), nil, spliceChunk, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	}
	moved := false
	for {
		var n int64
		var serr error
		socketFull := false
		// Wait until the pipe has bytes (TIOCINQ is FIONREAD); EAGAIN with bytes in the pipe means
		// the socket is full, and then wait for the socket.
		rerr := src.Read(func(pfd uintptr) bool {
			cerr := dst.Control(func(sfd uintptr) { n, serr = splice(pfd, sfd) })
			if cerr != nil {
				serr = cerr
				return true
			}
			if serr != unix.EAGAIN {
				return true
			}
			avail, err := unix.IoctlGetInt(int(pfd), unix.TIOCINQ)
			if err != nil || avail == 0 {
				return false
			}
			socketFull = true
			return true
		})
		if rerr != nil {
			return rerr // the pipe was closed
		}
		if socketFull {
			werr := dst.Write(func(sfd uintptr) bool {
				cerr := src.Control(func(pfd uintptr) { n, serr = splice(pfd, sfd) })
				if cerr != nil {
					serr = cerr
				}
				return serr != unix.EAGAIN
			})
			if werr != nil {
				return errors.Join(errWrite, werr)
			}
		}
		switch {
		case serr == unix.EINVAL && !moved:
			return errNoSplice
		case serr != nil:
			return errors.Join(errWrite, serr)
		case n == 0:
			return nil // EOF: every writer is gone
		}
		moved = true
		seen()
	}
}

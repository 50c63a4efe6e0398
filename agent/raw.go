package agent

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// MakeRaw puts f in raw mode when it is a terminal, as cfmakeraw(3) does:
// no echo, no line editing, no signals from ^C or ^Z, no flow control, no
// translation of CR or NL either way, 8-bit characters, and a read
// returning as soon as one byte is there. On a PaaS without pipe mode the
// one-off's stdin and stdout are a terminal, and the SSH stream must pass
// it byte for byte, so the agent calls this before it writes anything
// (issue 14).
//
// It returns a function that puts back the previous mode. When f is not a
// terminal it changes nothing and returns a function that does nothing
// and a nil error; any other failure to read or set the mode is returned.
func MakeRaw(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return func() error { return nil }, nil
	}
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() error { return unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

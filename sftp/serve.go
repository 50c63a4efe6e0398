package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// Options tune Serve; the zero value is fine.
type Options struct {
	// Logger receives refusals and internal errors; nil discards.
	Logger *slog.Logger
	// Stderr, when set (the channel's stderr), gets one line per refused
	// upload (size, quota, name): OpenSSH's sftp prints only a status code's
	// generic text ("Failure"), so without it the user would not know why.
	Stderr io.Writer
	// Handles bounds the files and directories open at once, in this
	// session and in all the sessions given the same Handles; nil means
	// NewHandles(0, 0) for this session alone.
	Handles *Handles
}

// extensions are the SFTP extensions the server announces in its
// SSH_FXP_VERSION (draft-ietf-secsh-filexfer-02 section 4), each with its
// version as OpenSSH's sftp-server announces it: the ones the staging area
// serves. hardlink@openssh.com, which pkg/sftp announces by default, is
// left out: a pending file has one name, so links are refused, and OpenSSH's
// sftp then says "Server does not support hardlink@openssh.com extension"
// for ln instead of sending a request that fails.
var extensions = [...]string{"posix-rename@openssh.com", "statvfs@openssh.com"}

var advertiseOnce sync.Once

// advertise sets pkg/sftp's list of announced extensions, which is one for
// the whole process: it is set before the first server starts, once.
func advertise() {
	if err := pkgsftp.SetSFTPExtensions(extensions[:]...); err != nil {
		panic("sftp: extensions pkg/sftp does not know: " + err.Error())
	}
}

// Serve runs the SFTP subsystem on ch over the scope until the client ends
// the session. It returns nil on a clean end (the bridge then sends
// exit-status 0: scp and sftp report a failure otherwise), the context's
// cause when ctx ended it, and an error for a broken or bad stream. Files
// still open when the session ends never become pending.
//
// Writes: pkg/sftp v1.13 runs 8 workers for reads and writes per session
// (SftpServerWorkerCount, a constant with no per-server option). That suits
// the staging area: each write is a pwrite at its offset, safe
// concurrently and out of order, and the workers bound what a session holds
// in memory to a few dozen packet buffers however many requests the client
// pipelines (OpenSSH's sftp keeps 64 in flight).
//
// Packet buffers are reused (pkg/sftp's allocator): without it each packet
// gets a new buffer, and at hundreds of MB/s the garbage collector and the
// runtime handing memory back to the kernel (madvise) held uploads to half
// the speed (BENCHMARKS.md). The buffers are 256 KiB, pkg/sftp's largest
// packet: the bridge's RSS grows by about 40 MiB while a session uploads. A
// buffer goes back to the pool once the request's answer is sent; the
// handlers keep no reference to it (WriteAt writes synchronously, ReadAt
// fills the buffer it is given).
func Serve(ctx context.Context, ch io.ReadWriteCloser, sc uploads.Files, opts Options) error {
	advertiseOnce.Do(advertise)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := opts.Handles
	if lim == nil {
		lim = NewHandles(0, 0)
	}
	h := &handlers{sc: sc, log: log, stderr: opts.Stderr, handles: &sessionHandles{lim: lim}}
	rs := pkgsftp.NewRequestServer(ch,
		pkgsftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h},
		pkgsftp.WithStartDirectory(Home),
		pkgsftp.WithRSAllocator())
	// Closing the channel is the only way to stop the request server.
	stop := context.AfterFunc(ctx, func() { rs.Close() })
	defer stop()
	err := rs.Serve()
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	}
	return fmt.Errorf("serve sftp: %w", err)
}

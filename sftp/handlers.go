package sftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// handlers implements every pkg/sftp handler interface over one scope.
type handlers struct {
	sc      uploads.Files
	log     *slog.Logger
	handles *sessionHandles

	stderrMu sync.Mutex
	stderr   io.Writer // nil: no explanations on stderr
	// limitTold: a refusal for the handle limits is logged and told once
	// per session, however many opens a client tries past it.
	limitTold sync.Once
	// storeTold: the object store's absence is told once per session,
	// whatever the operation (a listing, a stat, an upload).
	storeTold sync.Once
}

var (
	_ pkgsftp.FileReader           = (*handlers)(nil)
	_ pkgsftp.OpenFileWriter       = (*handlers)(nil)
	_ pkgsftp.PosixRenameFileCmder = (*handlers)(nil)
	_ pkgsftp.StatVFSFileCmder     = (*handlers)(nil)
	_ pkgsftp.LstatFileLister      = (*handlers)(nil)
	_ pkgsftp.RealPathFileLister   = (*handlers)(nil)
	_ pkgsftp.ReadlinkFileLister   = (*handlers)(nil)
)

// explain tells the user on the channel's stderr why a transfer was
// refused, once per cause.
func (h *handlers) explain(err error) {
	if !userError(err) {
		return
	}
	h.log.Info("sftp: refused", "reason", err.Error())
	if errors.Is(err, uploads.ErrStoreUnavailable) {
		h.storeTold.Do(func() { h.printStderr("upload refused: " + err.Error()) })
		return
	}
	h.printStderr("upload refused: " + err.Error())
}

// printStderr writes one line on the channel's stderr, if there is one.
func (h *handlers) printStderr(line string) {
	if h.stderr == nil {
		return
	}
	h.stderrMu.Lock()
	defer h.stderrMu.Unlock()
	fmt.Fprintln(h.stderr, line)
}

// acquire takes a handle for an open of path, or refuses it past the
// limits on open files (Handles).
func (h *handlers) acquire(path string) (release func(), err error) {
	release, err = h.handles.acquire(path)
	if err != nil {
		h.limitTold.Do(func() {
			h.log.Warn("sftp: open refused", "reason", err.Error())
			h.printStderr("open refused: " + err.Error())
		})
	}
	return release, err
}

// Fileread opens a pending file for reading back.
func (h *handlers) Fileread(r *pkgsftp.Request) (io.ReaderAt, error) {
	rel, err := resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	release, err := h.acquire(r.Filepath)
	if err != nil {
		return nil, err
	}
	f, _, err := h.sc.OpenFile(rel)
	if err != nil {
		release()
		return nil, h.status("open", err)
	}
	return &fileReader{FileReader: f, release: release}, nil
}

// fileReader gives its handle back when closed.
type fileReader struct {
	uploads.FileReader
	release func()
}

func (f *fileReader) Close() error {
	defer f.release()
	return f.FileReader.Close()
}

// Filewrite opens a file for writing: it becomes pending at a clean close.
func (h *handlers) Filewrite(r *pkgsftp.Request) (io.WriterAt, error) {
	return h.openWriter(r)
}

// OpenFile serves an open for reading and writing, as some clients ask
// even to upload.
func (h *handlers) OpenFile(r *pkgsftp.Request) (pkgsftp.WriterAtReaderAt, error) {
	return h.openWriter(r)
}

func (h *handlers) openWriter(r *pkgsftp.Request) (*fileWriter, error) {
	rel, err := resolve(r.Filepath)
	if err != nil {
		h.explain(err)
		return nil, err
	}
	pf := r.Pflags()
	flag := 0
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	release, err := h.acquire(r.Filepath)
	if err != nil {
		return nil, err
	}
	w, err := h.sc.CreateFile(rel, flag, openMode(r))
	if err != nil {
		release()
		h.explain(err)
		return nil, h.status("create", err)
	}
	return &fileWriter{w: w, h: h, release: release}, nil
}

// openMode reads the permissions an SSH_FXP_OPEN carries, 0 when unknown.
// pkg/sftp keeps the open's attribute bytes but not their flags word; four
// bytes can only be the permissions alone, which is what OpenSSH sends.
func openMode(r *pkgsftp.Request) fs.FileMode {
	if len(r.Attrs) != 4 {
		return 0
	}
	return fs.FileMode(binary.BigEndian.Uint32(r.Attrs)).Perm()
}

// fileWriter turns the staging writer's errors into SFTP statuses, and
// gives its handle back when closed.
type fileWriter struct {
	w         uploads.FileWriter
	h         *handlers
	release   func()
	explained sync.Once
}

func (f *fileWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.w.WriteAt(p, off)
	if err != nil {
		f.explained.Do(func() { f.h.explain(err) })
		return n, f.h.status("write", err)
	}
	return n, nil
}

func (f *fileWriter) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.w.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, f.h.status("read", err)
	}
	return n, err
}

// TransferError is called by pkg/sftp when the session ended with the file
// open: the transfer is incomplete, so nothing may become pending.
func (f *fileWriter) TransferError(err error) { f.w.TransferError(err) }

// Close makes the file pending. Its refusal (a store lost during the
// transfer, say) is explained on stderr as a write's is: OpenSSH's sftp
// shows only "close remote: Failure".
func (f *fileWriter) Close() error {
	defer f.release()
	err := f.w.Close()
	if err != nil {
		f.explained.Do(func() { f.h.explain(err) })
	}
	return f.h.status("close", err)
}

// Filecmd serves setstat, rename, rmdir, mkdir, remove; links are refused.
func (h *handlers) Filecmd(r *pkgsftp.Request) error {
	rel, err := resolve(r.Filepath)
	if err != nil {
		return err
	}
	switch r.Method {
	case "Setstat":
		a, ok := setAttrs(r)
		if !ok {
			return &statusError{code: pkgsftp.ErrSSHFxBadMessage, msg: "malformed attributes"}
		}
		return h.status("setstat", h.sc.Setattr(rel, a))
	case "Rename":
		return h.renameNoReplace(rel, r.Target)
	case "Rmdir":
		return h.status("rmdir", h.sc.Rmdir(rel))
	case "Mkdir":
		err := h.sc.Mkdir(rel, 0)
		h.explain(err)
		return h.status("mkdir", err)
	case "Remove":
		return h.status("remove", h.sc.Remove(rel))
	}
	// Link and Symlink: the platform takes plain files only.
	return &statusError{code: pkgsftp.ErrSSHFxOpUnsupported, msg: "links are not supported in " + Home}
}

func setAttrs(r *pkgsftp.Request) (uploads.Attrs, bool) {
	flags := r.AttrFlags()
	st := r.Attributes()
	var a uploads.Attrs
	if st == nil {
		return a, false
	}
	if flags.Permissions {
		m := st.FileMode().Perm()
		a.Mode = &m
	}
	if flags.Acmodtime {
		t := time.Unix(int64(st.Mtime), 0)
		a.ModTime = &t
	}
	if flags.Size {
		n := int64(st.Size)
		a.Size = &n
	}
	// Owner changes are accepted and ignored: the platform owns its files.
	return a, true
}

func (h *handlers) rename(from, target string) error {
	to, err := resolve(target)
	if err != nil {
		h.explain(err)
		return err
	}
	err = h.sc.Rename(from, to)
	h.explain(err)
	return h.status("rename", err)
}

// renameNoReplace serves SSH_FXP_RENAME, which must fail when the target
// exists (draft-ietf-secsh-filexfer-02 section 6.5): SSH_FX_NO_SUCH_FILE
// for a missing source, then SSH_FX_FAILURE for any existing target (file,
// directory, a file being written, or the source itself), as OpenSSH's
// sftp-server answers. Replacing is posix-rename@openssh.com's job.
//
// The check and the rename are two steps: another session of the same
// scope could make the target in between, and that rename then replaces
// it, as OpenSSH's sftp-server does on filesystems without hard links.
func (h *handlers) renameNoReplace(from, target string) error {
	to, err := resolve(target)
	if err != nil {
		h.explain(err)
		return err
	}
	if _, err := h.sc.Stat(from); err != nil {
		return h.status("rename", err)
	}
	if _, err := h.sc.Stat(to); err == nil {
		return &statusError{code: pkgsftp.ErrSSHFxFailure, msg: fmt.Sprintf("%s already exists; plain rename does not replace (posix-rename@openssh.com does)", path.Join(Home, to))}
	}
	return h.rename(from, target)
}

// PosixRename serves posix-rename@openssh.com: replace the target, as the
// upload-then-rename of IDEs and rclone expects.
func (h *handlers) PosixRename(r *pkgsftp.Request) error {
	rel, err := resolve(r.Filepath)
	if err != nil {
		return err
	}
	return h.rename(rel, r.Target)
}

// StatVFS answers statvfs@openssh.com (df) from the user's quota.
func (h *handlers) StatVFS(r *pkgsftp.Request) (*pkgsftp.StatVFS, error) {
	if _, err := resolve(r.Filepath); err != nil {
		return nil, err
	}
	const bsize = 4096
	used, quota := h.sc.Usage()
	if quota < 0 {
		quota = 1 << 50 // no quota: a large round number
	}
	total := uint64(quota) / bsize
	free := uint64(max(quota-used, 0)) / bsize
	return &pkgsftp.StatVFS{Bsize: bsize, Frsize: bsize, Blocks: total, Bfree: free, Bavail: free,
		Files: 1 << 20, Ffree: 1 << 20, Favail: 1 << 20, Namemax: 255}, nil
}

// Filelist serves readdir and stat.
func (h *handlers) Filelist(r *pkgsftp.Request) (pkgsftp.ListerAt, error) {
	rel, err := resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		// Only opendir lists: the listing is held by a handle until closed.
		release, err := h.acquire(r.Filepath)
		if err != nil {
			return nil, err
		}
		es, err := h.sc.List(rel)
		if err != nil {
			release()
			return nil, h.status("list", err)
		}
		l := make(listerAt, len(es))
		for i, e := range es {
			l[i] = fileInfo{e}
		}
		return &dirLister{listerAt: l, release: release}, nil
	case "Stat":
		return h.stat(rel)
	}
	return nil, &statusError{code: pkgsftp.ErrSSHFxOpUnsupported, msg: "unsupported request " + r.Method}
}

func (h *handlers) stat(rel string) (pkgsftp.ListerAt, error) {
	e, err := h.sc.Stat(rel)
	if err != nil {
		return nil, h.status("stat", err)
	}
	return listerAt{fileInfo{e}}, nil
}

// Lstat is Stat: there are no links.
func (h *handlers) Lstat(r *pkgsftp.Request) (pkgsftp.ListerAt, error) {
	rel, err := resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	return h.stat(rel)
}

// RealPath makes a path absolute from Home and clean. It refuses nothing:
// clients ask it for "/" too, and learn at the next stat that it is closed.
func (h *handlers) RealPath(p string) (string, error) { return realPath(p), nil }

// Readlink fails: there are no links.
func (h *handlers) Readlink(p string) (string, error) {
	rel, err := resolve(p)
	if err != nil {
		return "", err
	}
	if _, err := h.sc.Stat(rel); err != nil {
		return "", h.status("readlink", err)
	}
	return "", &statusError{code: pkgsftp.ErrSSHFxFailure, msg: "not a symbolic link"}
}

type listerAt []os.FileInfo

// dirLister is the listing of an open directory; pkg/sftp closes it with
// the handle.
type dirLister struct {
	listerAt
	release func()
}

func (d *dirLister) Close() error {
	d.release()
	return nil
}

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// fileInfo shows an entry of the scope as a file of /tmp/uploads.
type fileInfo struct{ e uploads.Entry }

func (f fileInfo) Name() string {
	if f.e.Name == "" {
		return path.Base(Home)
	}
	return path.Base(f.e.Name)
}
func (f fileInfo) Size() int64        { return f.e.Size }
func (f fileInfo) Mode() fs.FileMode  { return f.e.Mode }
func (f fileInfo) ModTime() time.Time { return f.e.ModTime }
func (f fileInfo) IsDir() bool        { return f.e.IsDir() }
func (f fileInfo) Sys() any           { return nil }

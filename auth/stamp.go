package auth

import (
	"os"
	"slices"
	"syscall"
	"time"
)

// fileStamp is what tells a changed file: editors that replace the file
// change the inode, others change size or modification time.
type fileStamp struct {
	name  string
	ok    bool
	mtime time.Time
	size  int64
	ino   uint64
	dev   uint64
}

func stampFiles(names []string) []fileStamp {
	out := make([]fileStamp, 0, len(names))
	for _, n := range names {
		s := fileStamp{name: n}
		if st, err := os.Stat(n); err == nil {
			s.ok, s.mtime, s.size = true, st.ModTime(), st.Size()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				s.ino, s.dev = uint64(sys.Ino), uint64(sys.Dev)
			}
		}
		out = append(out, s)
	}
	return out
}

func equalStamps(a, b []fileStamp) bool {
	return slices.EqualFunc(a, b, func(x, y fileStamp) bool {
		return x.name == y.name && x.ok == y.ok && x.mtime.Equal(y.mtime) && x.size == y.size && x.ino == y.ino && x.dev == y.dev
	})
}

package objstage

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"sshbridge/uploads"
)

// maxKeyLen is S3's bound on an object key, in bytes.
const maxKeyLen = 1024

// scopeKey is the hashed (user, app) of a scope, as in the keys.
type scopeKey struct{ user, app string }

// hashName is the local staging area's: the first 128 bits of SHA-256, in
// hex.
func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func encName(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func decName(s string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || uploads.CheckPath(string(b)) != nil {
		return "", false
	}
	return string(b), true
}

func (s *Store) scopePrefix(k scopeKey) string { return s.prefix + "s/" + k.user + "/" + k.app + "/" }
func (s *Store) userPrefix(user string) string { return s.prefix + "s/" + user + "/" }
func (s *Store) blobKey(k scopeKey, id string) string {
	return s.prefix + "b/" + k.user + "/" + k.app + "/" + id
}
func (s *Store) leaseKey(k scopeKey, id string) string {
	return s.prefix + "l/" + k.user + "/" + k.app + "/" + id
}

// fileEnt is a pending file as its entry's key says.
type fileEnt struct {
	key     string // the entry's object key
	name    string
	created time.Time
	id      string
	size    int64
	mode    fs.FileMode
	mtime   time.Time
}

func (f *fileEnt) entry() uploads.Entry {
	return uploads.Entry{Name: f.name, Size: f.size, Mode: f.mode, ModTime: f.mtime, Created: f.created}
}

// dirEnt is a directory made by mkdir.
type dirEnt struct {
	key     string
	name    string
	created time.Time
	mode    fs.FileMode
}

func (s *Store) fileKey(k scopeKey, f *fileEnt) string {
	return fmt.Sprintf("%sf/%s/%016x.%s.%d.%o.%d", s.scopePrefix(k), encName(f.name),
		f.created.UnixNano(), f.id, f.size, uint32(f.mode.Perm()), f.mtime.UnixNano())
}

func (s *Store) dirKey(k scopeKey, d *dirEnt) string {
	return fmt.Sprintf("%sd/%s/%016x.%o", s.scopePrefix(k), encName(d.name), d.created.UnixNano(), uint32(d.mode.Perm()))
}

// checkKeyLen refuses a name whose keys would pass S3's bound.
func (s *Store) checkKeyLen(k scopeKey, name string) error {
	f := fileEnt{name: name, created: time.Unix(0, 1<<62), id: strings.Repeat("0", 32), size: 1 << 62, mode: 0o777, mtime: time.Unix(0, -1<<62)}
	if len(s.fileKey(k, &f)) > maxKeyLen {
		return fmt.Errorf("%w %q: too long for the shared upload store", uploads.ErrInvalidName, name)
	}
	return nil
}

// parseKey reads a key under a scope's prefix (rest is what follows it):
// a file's entry or a directory's; ok is false for anything else.
func parseKey(key, rest string) (f *fileEnt, d *dirEnt, ok bool) {
	kind, rest, _ := strings.Cut(rest, "/")
	enc, ver, found := strings.Cut(rest, "/")
	if !found || strings.Contains(ver, "/") {
		return nil, nil, false
	}
	name, ok := decName(enc)
	if !ok {
		return nil, nil, false
	}
	parts := strings.Split(ver, ".")
	switch {
	case kind == "f" && len(parts) == 5:
		created, err1 := strconv.ParseInt(parts[0], 16, 64)
		size, err2 := strconv.ParseInt(parts[2], 10, 64)
		mode, err3 := strconv.ParseUint(parts[3], 8, 32)
		mtime, err4 := strconv.ParseInt(parts[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(parts[1]) != 32 || size < 0 {
			return nil, nil, false
		}
		if _, err := hex.DecodeString(parts[1]); err != nil {
			return nil, nil, false
		}
		return &fileEnt{key: key, name: name, created: time.Unix(0, created), id: parts[1], size: size,
			mode: fs.FileMode(mode).Perm(), mtime: time.Unix(0, mtime)}, nil, true
	case kind == "d" && len(parts) == 2:
		created, err1 := strconv.ParseInt(parts[0], 16, 64)
		mode, err2 := strconv.ParseUint(parts[1], 8, 32)
		if err1 != nil || err2 != nil {
			return nil, nil, false
		}
		return nil, &dirEnt{key: key, name: name, created: time.Unix(0, created), mode: fs.FileMode(mode).Perm() | fs.ModeDir}, true
	}
	return nil, nil, false
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("blob id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

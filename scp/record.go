package scp

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// Kinds of records.
const (
	KindFile    = 'C'
	KindDir     = 'D'
	KindEndDir  = 'E'
	KindTimes   = 'T'
	KindWarning = 1 // the sender reports an error and goes on
	KindFatal   = 2 // the sender reports an error and stops
)

// Record is one control line of the scp protocol.
type Record struct {
	Kind    byte
	Mode    fs.FileMode // C, D: permission bits (and setuid/setgid/sticky as sent)
	Size    int64       // C: bytes that follow
	Name    string      // C, D: a plain name, never a path
	Mtime   time.Time   // T
	Atime   time.Time   // T
	Message string      // warning, fatal
}

// maxLine bounds a control line: OpenSSH's buffer is 2048 bytes; names are
// at most 255 bytes on the platform anyway.
const maxLine = 2048

// errUnexpectedName is the error OpenSSH's sink reports for a name that is
// a path: it must not climb out of the target.
var errUnexpectedName = errors.New("unexpected filename")

// ParseRecord parses one control line, without its final '\n', as OpenSSH's
// sink does: exactly four octal digits of mode, a decimal size, a name that
// is neither empty, "..", "." nor holds a '/'.
func ParseRecord(line string) (Record, error) {
	if line == "" {
		return Record{}, errors.New("unexpected <newline>")
	}
	if len(line) > maxLine {
		return Record{}, errors.New("record too long")
	}
	switch line[0] {
	case KindWarning, KindFatal:
		return Record{Kind: line[0], Message: line[1:]}, nil
	case KindEndDir:
		if line != "E" {
			return Record{}, errors.New("bad end of directory record")
		}
		return Record{Kind: KindEndDir}, nil
	case KindTimes:
		return parseTimes(line[1:])
	case KindFile, KindDir:
		return parseEntry(line)
	}
	return Record{}, errors.New("expected control record")
}

func parseEntry(line string) (Record, error) {
	r := Record{Kind: line[0]}
	if len(line) < 5 {
		return r, errors.New("bad mode")
	}
	for _, c := range line[1:5] {
		if c < '0' || c > '7' {
			return r, errors.New("bad mode")
		}
		r.Mode = r.Mode<<3 | fs.FileMode(c-'0')
	}
	// Unix setuid/setgid/sticky bits are not Go's; the staging area keeps
	// permission bits only.
	r.Mode &= fs.ModePerm
	rest := line[5:]
	if !strings.HasPrefix(rest, " ") {
		return r, errors.New("mode not delimited")
	}
	rest = rest[1:]
	sizeStr, name, ok := strings.Cut(rest, " ")
	if !ok {
		return r, errors.New("size not delimited")
	}
	size, err := parseDecimal(sizeStr)
	if err != nil {
		return r, fmt.Errorf("size: %w", err)
	}
	r.Size = size
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return r, fmt.Errorf("%w: %s", errUnexpectedName, strconv.Quote(name))
	}
	r.Name = name
	return r, nil
}

func parseTimes(s string) (Record, error) {
	r := Record{Kind: KindTimes}
	f := strings.Split(s, " ")
	if len(f) != 4 {
		return r, errors.New("bad times record")
	}
	var v [4]int64
	for i, x := range f {
		n, err := parseDecimal(x)
		if err != nil {
			return r, fmt.Errorf("times: %w", err)
		}
		v[i] = n
	}
	if v[1] > 999999 || v[3] > 999999 {
		return r, errors.New("times: microseconds out of range")
	}
	r.Mtime = time.Unix(v[0], v[1]*1000)
	r.Atime = time.Unix(v[2], v[3]*1000)
	return r, nil
}

func parseDecimal(s string) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, errors.New("not present")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// String renders a record as a sender writes it, without the final '\n'.
func (r Record) String() string {
	switch r.Kind {
	case KindFile, KindDir:
		return fmt.Sprintf("%c%04o %d %s", r.Kind, uint32(r.Mode.Perm()), r.Size, r.Name)
	case KindEndDir:
		return "E"
	case KindTimes:
		return fmt.Sprintf("T%d %d %d %d", r.Mtime.Unix(), r.Mtime.Nanosecond()/1000, r.Atime.Unix(), r.Atime.Nanosecond()/1000)
	}
	return string(rune(r.Kind)) + r.Message
}

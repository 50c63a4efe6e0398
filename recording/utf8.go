package recording

import (
	"strings"
	"unicode/utf8"
)

// decoder turns a byte stream, cut anywhere, into valid UTF-8 strings: a
// sequence cut at the end of a chunk waits for the next; each maximal
// invalid subpart becomes one U+FFFD (the Unicode Standard's "substitution
// of maximal subparts", as Python's "replace" decoder that asciinema uses).
type decoder struct {
	tail [utf8.UTFMax]byte // an incomplete sequence from the last chunk
	n    int
}

// decode returns the text of tail+p up to any incomplete sequence at its
// end, which it keeps.
func (d *decoder) decode(p []byte) string {
	if d.n > 0 {
		buf := make([]byte, 0, d.n+len(p))
		buf = append(buf, d.tail[:d.n]...)
		p = append(buf, p...)
		d.n = 0
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); {
		if c := p[i]; c < utf8.RuneSelf {
			j := i + 1
			for j < len(p) && p[j] < utf8.RuneSelf {
				j++
			}
			b.Write(p[i:j])
			i = j
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r != utf8.RuneError || size > 1 {
			b.Write(p[i : i+size])
			i += size
			continue
		}
		if !utf8.FullRune(p[i:]) {
			// A valid start of a sequence the next chunk completes.
			d.n = copy(d.tail[:], p[i:])
			break
		}
		b.WriteRune(utf8.RuneError)
		i += invalidLen(p[i:])
	}
	return b.String()
}

// flush returns what an incomplete sequence kept for the next chunk
// becomes when no chunk follows: one U+FFFD.
func (d *decoder) flush() string {
	if d.n == 0 {
		return ""
	}
	d.n = 0
	return string(utf8.RuneError)
}

// invalidLen is the length of the maximal subpart at the start of p, which
// does not begin a valid sequence: the longest prefix that could still
// begin one (utf8.FullRune false), at least one byte.
func invalidLen(p []byte) int {
	n := 1
	for k := 2; k < utf8.UTFMax && k <= len(p); k++ {
		if utf8.FullRune(p[:k]) {
			break
		}
		n = k
	}
	return n
}

// validString is s with each run of invalid bytes as one U+FFFD: the
// header's strings, which come whole.
func validString(s string) string {
	return strings.ToValidUTF8(s, string(utf8.RuneError))
}

package probe

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"sshbridge/uploads"
)

// ShellTypeProbe is rclone's shell-type detection command. A POSIX shell
// prints "%ComSpec%" (ShellId is unset), which rclone reads as "unix";
// cmd.exe and PowerShell print something else.
const ShellTypeProbe = "echo ${ShellId}%ComSpec%"

// Command is one probe: an exec command line the bridge answers from the
// staging area. The zero value is not a probe; Parse makes them.
type Command struct {
	sum  string // "md5sum" or "sha1sum"; "" for the shell-type probe
	path string // the file as the command names it; "" for standard input
	rel  string // its name in the scope
}

// Parse returns the probe a command line is, and false for every other
// command line. It accepts exactly ShellTypeProbe, "md5sum", "sha1sum",
// and "md5sum " or "sha1sum " followed by one word naming a file under
// /tmp/uploads: a clean absolute path (uploads.CheckPath on the part after
// "/tmp/uploads/") spelled with letters, digits, non-ASCII bytes and
// "_.,:/@%+=-" unquoted, any byte after a backslash but a newline, and
// single- or double-quoted runs (double quotes without "$", "`", "\" or
// "!"). Whatever a shell would split, expand or redirect is refused.
func Parse(command string) (Command, bool) {
	switch command {
	case ShellTypeProbe:
		return Command{}, true
	case "md5sum", "sha1sum":
		return Command{sum: command}, true
	}
	sum, word, ok := strings.Cut(command, " ")
	if !ok || (sum != "md5sum" && sum != "sha1sum") {
		return Command{}, false
	}
	p, ok := unquoteWord(word)
	if !ok {
		return Command{}, false
	}
	rel, ok := strings.CutPrefix(p, uploads.Home+"/")
	if !ok || uploads.CheckPath(rel) != nil {
		return Command{}, false
	}
	return Command{sum: sum, path: p, rel: rel}, true
}

// unquoteWord reads s as one shell word that no expansion touches, and
// returns its value; false when s is anything else.
func unquoteWord(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) || s[i+1] == '\n' {
				return "", false
			}
			i++
			b.WriteByte(s[i])
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", false
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return "", false
			}
			in := s[i+1 : i+1+j]
			if strings.ContainsAny(in, "$`\\!") {
				return "", false
			}
			b.WriteString(in)
			i += j + 1
		case safe(c):
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	return b.String(), true
}

// safe reports whether a shell takes c literally outside quotes, anywhere
// in a word that is not the command's name.
func safe(c byte) bool {
	return c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("_.,:/@%+=-", c) >= 0
}

// String names the probe for the log: "shell-type", "md5sum -" or
// "md5sum PATH".
func (c Command) String() string {
	switch {
	case c.sum == "":
		return "shell-type"
	case c.path == "":
		return c.sum + " -"
	}
	return c.sum + " " + c.path
}

// Run answers the probe as the command would in a one-off that received
// the pending files of sc, and returns its exit code: the shell-type probe
// prints "%ComSpec%"; a sum prints GNU coreutils' line, "HEX  NAME" (NAME
// "-" for standard input, read to its end; a NAME holding a backslash gets
// it doubled and the line a leading backslash), and exits 0. A missing
// file, a directory or a file still being uploaded gets one line on stderr
// ("md5sum: NAME: No such file or directory") and exit code 1. A read
// error of the staging area exits 1 with a line that does not carry it;
// err says what it was (nil otherwise).
func (c Command) Run(ctx context.Context, sc uploads.Files, stdin io.Reader, stdout, stderr io.Writer) (code int, err error) {
	if c.sum == "" {
		_, err := io.WriteString(stdout, "%ComSpec%\n")
		return 0, err
	}
	h := md5.New()
	if c.sum == "sha1sum" {
		h = sha1.New()
	}
	if c.path == "" {
		if _, err := io.Copy(h, stdin); err != nil {
			return 1, fmt.Errorf("read standard input: %w", err)
		}
		_, err := fmt.Fprintf(stdout, "%s  -\n", hex.EncodeToString(h.Sum(nil)))
		return 0, err
	}
	f, _, err := sc.OpenFile(c.rel)
	if err != nil {
		reason := "No such file or directory"
		switch {
		case errors.Is(err, uploads.ErrIsDir):
			reason = "Is a directory"
		case errors.Is(err, uploads.ErrBusy):
			reason = "still being uploaded, not pending yet"
		case !errors.Is(err, uploads.ErrNotExist):
			fmt.Fprintf(stderr, "%s: %s: read error in the upload area\n", c.sum, c.path)
			return 1, err
		}
		fmt.Fprintf(stderr, "%s: %s: %s\n", c.sum, c.path, reason)
		return 1, nil
	}
	defer f.Close()
	if err := copyCtx(ctx, h, f); err != nil {
		fmt.Fprintf(stderr, "%s: %s: read error in the upload area\n", c.sum, c.path)
		return 1, err
	}
	_, err = io.WriteString(stdout, sumLine(h, c.path))
	return 0, err
}

// sumLine is GNU coreutils' output line for a file name.
func sumLine(h hash.Hash, name string) string {
	sum := hex.EncodeToString(h.Sum(nil))
	if strings.ContainsRune(name, '\\') {
		return `\` + sum + "  " + strings.ReplaceAll(name, `\`, `\\`) + "\n"
	}
	return sum + "  " + name + "\n"
}

// copyCtx copies r into w until EOF or until ctx ends: a large file is
// not hashed for a client that went away.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) error {
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		n, err := r.Read(buf)
		w.Write(buf[:n])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

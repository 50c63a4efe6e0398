package scp

import (
	"errors"
	"fmt"
	"strings"
)

// Args are the options of a server-side scp command line.
type Args struct {
	Sink      bool // -t: the client sends files
	Source    bool // -f: the client fetches files
	Recursive bool // -r
	TargetDir bool // -d: the target must be a directory
	Preserve  bool // -p: modes and times come along
	Paths     []string
}

// IsCommand reports whether an exec command line is the server side of
// legacy scp (`scp … -t …` or `scp … -f …`), which the bridge answers itself.
func IsCommand(command string) bool {
	words, err := SplitCommand(command)
	if err != nil || len(words) == 0 || words[0] != "scp" {
		return false
	}
	a, err := ParseArgs(words[1:])
	return err == nil && (a.Sink || a.Source)
}

// ParseArgs parses the arguments after "scp" as OpenSSH's scp does with
// getopt: flags may be grouped ("-rt"), "--" ends them, and flags of the
// client side are accepted and ignored.
func ParseArgs(args []string) (Args, error) {
	var a Args
	i := 0
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		for j := 1; j < len(arg); j++ {
			switch c := arg[j]; c {
			case 't':
				a.Sink = true
			case 'f':
				a.Source = true
			case 'r':
				a.Recursive = true
			case 'd':
				a.TargetDir = true
			case 'p':
				a.Preserve = true
			case 'v', 'q', 'C', 'B', '3', '4', '6', 'A', 'O', 's', 'T', 'R':
			case 'l', 'c', 'i', 'P', 'S', 'o', 'F', 'J', 'D', 'X':
				// Flags with a value, in the same word or the next one.
				if j == len(arg)-1 {
					i++
					if i >= len(args) {
						return a, fmt.Errorf("option -%c needs a value", c)
					}
				}
				j = len(arg)
			default:
				return a, fmt.Errorf("unknown option -%c", c)
			}
		}
	}
	a.Paths = args[i:]
	if a.Sink == a.Source {
		return a, errors.New("exactly one of -t and -f is needed")
	}
	if len(a.Paths) == 0 {
		return a, errors.New("no path given")
	}
	return a, nil
}

// SplitCommand splits a command line into words as a POSIX shell would,
// without expansions: blanks separate words; single quotes keep everything;
// double quotes keep everything but \\, \", \$ and \`; a backslash outside
// quotes keeps the next character. scp quotes nothing itself, so a target
// with spaces arrives quoted by the user, meant for the shell.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				inWord = true
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// homePath expands a leading "~" as a shell would for the user, whose home
// is the upload directory.
func homePath(p string) string {
	if p == "~" {
		return "."
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return rest
	}
	return p
}

package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// ErrHelp is returned by Parse when the command line asked for the usage
// text (-h, -help or --help).
var ErrHelp = flag.ErrHelp

// FlagSet is a set of long flags, each bound to the environment variable
// named in the call that defines it. A flag given on the command line wins
// over its variable; an empty variable counts as unset.
type FlagSet struct {
	name  string // command name used in messages, e.g. "bridge platform"
	fs    *flag.FlagSet
	flags []*Flag // in the order they were defined
	bad   *badValue
	// Commands names the subcommands that may come first on the command
	// line, for the error about an unexpected argument.
	Commands []string
}

// Flag is one defined flag, for adjusting how --help shows it.
type Flag struct {
	Name        string
	Env         string // "" when no variable sets it
	Usage       string
	Placeholder string // the value's name in --help, e.g. "ADDR"
	DefaultText string // the default as --help shows it; "" shows "none"
	value       flag.Value
	checks      []func() error
	fromEnv     bool  // set by its variable (and not overridden by the command line)
	fromArgs    bool  // set on the command line
	aliasOf     *Flag // for an alias: the flag it names
	givenAs     *Flag // the alias that gave this flag its value, if one did
}

// Check adds a test of the flag's final value, which Parse runs after the
// environment and the command line are read; its error is said with the
// flag or variable that gave the value.
func (f *Flag) Check(check func() error) *Flag {
	f.checks = append(f.checks, check)
	return f
}

// IsSet says whether the command line or the environment gave the flag a
// value (false: it has its default).
func (f *Flag) IsSet() bool { return f.fromArgs || f.fromEnv || f.givenAs != nil }

// Source names where the flag's value came from, as the user wrote it:
// "--name" for the command line or the default, the variable's name when
// only the environment set it.
func (f *Flag) Source() string {
	if f.givenAs != nil {
		return f.givenAs.Source()
	}
	if f.fromEnv && !f.fromArgs {
		return f.Env
	}
	return "--" + f.Name
}

// describe is the flag and its value as the user gave them.
func (f *Flag) describe() string {
	if f.givenAs != nil {
		return f.givenAs.describe()
	}
	if f.fromEnv && !f.fromArgs {
		return fmt.Sprintf("%s=%q", f.Env, f.value.String())
	}
	return fmt.Sprintf("--%s %q", f.Name, f.value.String())
}

// NoDefault, given to Default, shows no default in --help (for a flag that
// is refused, or whose absence is not a value).
const NoDefault = "\x00"

// Arg sets the value's name shown in --help ("ADDR", "FILE").
func (f *Flag) Arg(name string) *Flag {
	f.Placeholder = name
	return f
}

// Default replaces the default --help shows, for defaults that depend on
// the machine (a home directory) or are better said in words.
func (f *Flag) Default(text string) *Flag {
	f.DefaultText = text
	return f
}

// badValue records the first value a flag's Set refused, so that the error
// names the flag and the reason in one line.
type badValue struct {
	flag, value string
	err         error
	missing     bool // the value was the next flag: no value was given
}

// flagNamed says whether arg is a defined flag as written on a command
// line ("-name", "--name" or "--name=value"), and which.
func (s *FlagSet) flagNamed(arg string) (string, bool) {
	if !strings.HasPrefix(arg, "-") {
		return "", false
	}
	name := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	name, _, _ = strings.Cut(name, "=")
	return name, name != "" && s.Lookup(name) != nil
}

// NewFlagSet returns an empty set for the command called name.
func NewFlagSet(name string) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &FlagSet{name: name, fs: fs}
}

// Name is the command name the set was made with.
func (s *FlagSet) Name() string { return s.name }

// Var defines a flag of any value type; env may be "".
func (s *FlagSet) Var(v Value, name, env, usage string) *Flag {
	f := &Flag{Name: name, Env: env, Usage: usage, Placeholder: v.Placeholder(), DefaultText: v.String(), value: v}
	s.fs.Var(recordingValue{v, name, s}, name, usage)
	s.flags = append(s.flags, f)
	return f
}

// Alias defines name, with its own variable env, as another name for the
// flag called of: both set the same value, and --help says which is the
// main name. For a flag renamed to the field's standard name, the old name
// keeps working.
func (s *FlagSet) Alias(name, env, of string) *Flag {
	target := s.Lookup(of)
	if target == nil {
		panic("cli: alias of an undefined flag --" + of)
	}
	f := &Flag{Name: name, Env: env, Usage: "the older name of --" + of, Placeholder: target.Placeholder,
		DefaultText: NoDefault, value: target.value, aliasOf: target}
	s.fs.Var(recordingValue{target.value.(Value), name, s}, name, f.Usage)
	s.flags = append(s.flags, f)
	return f
}

// Flags lists the defined flags in the order they were defined.
func (s *FlagSet) Flags() []*Flag { return s.flags }

// Lookup returns the flag called name, or nil.
func (s *FlagSet) Lookup(name string) *Flag {
	for _, f := range s.flags {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Parse fills the flags from the environment, then from args. It returns
// ErrHelp when args ask for help, and otherwise an *Error whose message is
// one line naming the flag or variable and the fix.
func (s *FlagSet) Parse(args []string) error {
	for _, f := range s.flags {
		if f.Env == "" {
			continue
		}
		v, ok := os.LookupEnv(f.Env)
		if !ok || v == "" {
			continue
		}
		if err := f.value.Set(v); err != nil {
			return &Error{Command: s.name, Msg: fmt.Sprintf("%s=%q: %v", f.Env, v, err)}
		}
		f.fromEnv = true
		if f.aliasOf != nil {
			f.aliasOf.fromEnv, f.aliasOf.givenAs = true, f
		}
	}
	err := s.fs.Parse(args)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		return ErrHelp
	case s.bad != nil && s.bad.missing:
		return &Error{Command: s.name, Msg: fmt.Sprintf("--%s %v", s.bad.flag, s.bad.err)}
	case s.bad != nil:
		b := s.bad
		return &Error{Command: s.name, Msg: fmt.Sprintf("--%s %q: %v", b.flag, b.value, b.err)}
	default:
		return &Error{Command: s.name, Msg: s.explain(err)}
	}
	if s.fs.NArg() > 0 {
		msg := fmt.Sprintf("unexpected argument %q: this command takes flags only", s.fs.Arg(0))
		if len(s.Commands) > 0 {
			msg = fmt.Sprintf("unexpected argument %q: give flags, or one of the commands %s first", s.fs.Arg(0), strings.Join(s.Commands, ", "))
		}
		return &Error{Command: s.name, Msg: msg}
	}
	s.fs.Visit(func(fl *flag.Flag) {
		if f := s.Lookup(fl.Name); f != nil {
			f.fromArgs = true
			if f.aliasOf != nil {
				f.aliasOf.fromArgs, f.aliasOf.givenAs = true, f
			}
		}
	})
	for _, f := range s.flags {
		for _, check := range f.checks {
			if err := check(); err != nil {
				return &Error{Command: s.name, Msg: fmt.Sprintf("%s: %v", f.describe(), err)}
			}
		}
	}
	return nil
}

// Errorf is an error about the value of the flag called name, said with
// the flag or variable that gave it, for checks that span several flags or
// need the outside world (a file that must exist).
func (s *FlagSet) Errorf(name, format string, a ...any) *Error {
	f := s.Lookup(name)
	what := "--" + name
	if f != nil {
		what = f.describe()
	}
	return &Error{Command: s.name, Msg: what + ": " + fmt.Sprintf(format, a...)}
}

// explain turns the flag package's parse errors, whose wording is fixed
// by that package, into a sentence that says what to do.
func (s *FlagSet) explain(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		out := "unknown flag " + dashes(name)
		if near := s.closest(name); near != "" {
			out += " (did you mean --" + near + "?)"
		}
		return out
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		f := s.Lookup(name)
		if f != nil && f.Placeholder != "" {
			return fmt.Sprintf("--%s needs a value, as in --%s %s", name, name, f.Placeholder)
		}
		return fmt.Sprintf("--%s needs a value", name)
	}
	if arg, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return fmt.Sprintf("bad flag syntax %q: flags are written --name value or --name=value", arg)
	}
	return msg
}

// dashes writes a flag name as the user most likely typed it.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + strings.TrimPrefix(name, "-")
}

// closest names the defined flag the user most likely meant: the only one
// that starts with what was typed, else the nearest within two edits.
func (s *FlagSet) closest(typed string) string {
	typed = strings.TrimPrefix(typed, "-")
	if typed == "" {
		return ""
	}
	var prefixed []string
	for _, f := range s.flags {
		if strings.HasPrefix(f.Name, typed) {
			prefixed = append(prefixed, f.Name)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	best, bestDist := "", 3
	for _, f := range s.flags {
		if d := editDistance(typed, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Error is a command-line or environment error: one line for the user.
type Error struct {
	Command string
	Msg     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s; see %s --help", e.Command, e.Msg, e.Command)
}

// recordingValue passes Set to the flag's value and remembers a refusal.
type recordingValue struct {
	Value
	name string
	set  *FlagSet
}

func (r recordingValue) Set(v string) error {
	var err error
	if name, ok := r.set.flagNamed(v); ok && !r.IsBoolFlag() {
		// `--listen --data-dir DIR`: the flag package takes the next flag
		// as the value; say that the value is missing instead.
		err = fmt.Errorf("needs a value before --%s", name)
		if f := r.set.Lookup(r.name); f != nil && f.Placeholder != "" {
			err = fmt.Errorf("needs a value before --%s, as in --%s %s", name, r.name, f.Placeholder)
		}
		if r.set.bad == nil {
			r.set.bad = &badValue{flag: r.name, value: v, err: err, missing: true}
		}
		return err
	}
	err = r.Value.Set(v)
	if err != nil && r.set.bad == nil {
		r.set.bad = &badValue{flag: r.name, value: v, err: err}
	}
	return err
}

// IsBoolFlag lets the flag package accept "--version" with no value.
func (r recordingValue) IsBoolFlag() bool {
	b, ok := r.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Section is a titled block of lines in the usage text.
type Section struct {
	Title string
	Lines [][2]string // left column, right column
}

// WriteUsage writes the usage text: the given sections (subcommands
// first, by convention), then every flag once, with its variable and its
// default on the line below it.
func (s *FlagSet) WriteUsage(w io.Writer, sections ...Section) {
	for _, sec := range sections {
		fmt.Fprintf(w, "%s:\n", sec.Title)
		writeColumns(w, sec.Lines)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Flags (each can also be set by the environment variable shown; the flag wins):")
	var lines [][2]string
	for _, f := range s.flags {
		left := "--" + f.Name
		if f.Placeholder != "" {
			left += " " + f.Placeholder
		}
		lines = append(lines, [2]string{left, f.Usage})
		var facts []string
		if f.Env != "" {
			facts = append(facts, "$"+f.Env)
		}
		if _, isBool := f.value.(*Bool); !isBool && f.DefaultText != NoDefault {
			def := f.DefaultText
			if def == "" {
				def = "none"
			}
			facts = append(facts, "default: "+def)
		}
		if len(facts) > 0 {
			lines = append(lines, [2]string{"", strings.Join(facts, "; ")})
		}
	}
	writeColumns(w, lines)
}

// usageWidth is the width the usage text is wrapped to.
const usageWidth = 80

// writeColumns aligns two columns and wraps the right one; a left column
// too wide for the gutter puts its right column on the next line.
func writeColumns(w io.Writer, lines [][2]string) {
	const gutter = 32
	for _, l := range lines {
		right := wrap(l[1], usageWidth-gutter)
		first := l[0]
		if len(first) > gutter-3 {
			fmt.Fprintf(w, "  %s\n", first)
			first = ""
		}
		for i, r := range right {
			left := ""
			if i == 0 {
				left = first
			}
			fmt.Fprintf(w, "  %-*s%s\n", gutter-2, left, r)
		}
	}
}

// wrap splits text into lines of at most width bytes at spaces; a word
// longer than width gets a line of its own.
func wrap(text string, width int) []string {
	var out []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			out = append(out, line)
			line = word
		}
	}
	return append(out, line)
}

// Names lists the flag names, sorted, for tests and docs.
func (s *FlagSet) Names() []string {
	var out []string
	for _, f := range s.flags {
		out = append(out, f.Name)
	}
	sort.Strings(out)
	return out
}

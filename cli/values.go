package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Value is a flag value that also names its placeholder for --help.
type Value interface {
	flag.Value
	Placeholder() string
}

// String defines a string flag with default def.
func (s *FlagSet) String(p *string, name, env, def, usage string) *Flag {
	*p = def
	return s.Var((*String)(p), name, env, usage)
}

// Int defines an integer flag with default def.
func (s *FlagSet) Int(p *int, name, env string, def int, usage string) *Flag {
	*p = def
	return s.Var((*Int)(p), name, env, usage)
}

// Duration defines a Go duration flag ("90s", "2m", "1h30m") with default def.
func (s *FlagSet) Duration(p *time.Duration, name, env string, def time.Duration, usage string) *Flag {
	*p = def
	return s.Var((*Duration)(p), name, env, usage)
}

// Size defines a byte-count flag with default def (see Size).
func (s *FlagSet) Size(p *int64, name, env string, def int64, usage string) *Flag {
	*p = def
	return s.Var((*Size)(p), name, env, usage)
}

// List defines a comma-separated list flag, empty by default.
func (s *FlagSet) List(p *[]string, name, env, usage string) *Flag {
	return s.Var((*List)(p), name, env, usage)
}

// Level defines a log level flag with default def.
func (s *FlagSet) Level(p *slog.Level, name, env string, def slog.Level, usage string) *Flag {
	*p = def
	return s.Var((*Level)(p), name, env, usage)
}

// Bool defines a flag that is true when given with no value.
func (s *FlagSet) Bool(p *bool, name, env, usage string) *Flag {
	return s.Var((*Bool)(p), name, env, usage)
}

// String is a flag value holding any string.
type String string

func (v *String) String() string      { return string(*v) }
func (v *String) Set(s string) error  { *v = String(s); return nil }
func (v *String) Placeholder() string { return "STRING" }

// Int is a flag value holding a whole number.
type Int int

func (v *Int) String() string      { return strconv.Itoa(int(*v)) }
func (v *Int) Placeholder() string { return "N" }
func (v *Int) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	*v = Int(n)
	return nil
}

// Duration is a flag value holding a Go duration.
type Duration time.Duration

func (v *Duration) String() string      { return formatDuration(time.Duration(*v)) }
func (v *Duration) Placeholder() string { return "DURATION" }
func (v *Duration) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not a duration (a number with a unit: 90s, 2m, 1h30m)")
	}
	*v = Duration(d)
	return nil
}

// formatDuration writes whole minutes and hours without the zero parts
// Go's own formatting adds ("2m" rather than "2m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Size is a flag value holding a number of bytes, written as a whole
// number with an optional K, M or G suffix (powers of 1024).
type Size int64

func (v *Size) Placeholder() string { return "SIZE" }

// String writes the size with the largest suffix that divides it exactly.
func (v *Size) String() string {
	n := int64(*v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (v *Size) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	*v = Size(n)
	return nil
}

// ParseSize reads a byte count: a whole number with an optional K, M or G
// suffix (powers of 1024). Negative numbers and overflows are errors.
func ParseSize(s string) (int64, error) {
	digits, mult := strings.TrimSpace(s), int64(1)
	switch {
	case strings.HasSuffix(digits, "K"):
		mult, digits = 1<<10, strings.TrimSuffix(digits, "K")
	case strings.HasSuffix(digits, "M"):
		mult, digits = 1<<20, strings.TrimSuffix(digits, "M")
	case strings.HasSuffix(digits, "G"):
		mult, digits = 1<<30, strings.TrimSuffix(digits, "G")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size (a whole number of bytes, optionally with K, M or G)")
	}
	return n * mult, nil
}

// List is a comma-separated list flag value; blank items are dropped and
// each Set replaces the whole list.
type List []string

func (v *List) String() string      { return strings.Join(*v, ",") }
func (v *List) Placeholder() string { return "LIST" }
func (v *List) Set(s string) error {
	*v = nil
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v = append(*v, item)
		}
	}
	return nil
}

// Level is a log level flag value: debug, info, warn or error.
type Level slog.Level

func (v *Level) String() string      { return strings.ToLower(slog.Level(*v).String()) }
func (v *Level) Placeholder() string { return "LEVEL" }
func (v *Level) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		*v = Level(slog.LevelDebug)
	case "info":
		*v = Level(slog.LevelInfo)
	case "warn", "warning":
		*v = Level(slog.LevelWarn)
	case "error":
		*v = Level(slog.LevelError)
	default:
		return fmt.Errorf("not a log level (debug, info, warn or error)")
	}
	return nil
}

// Bool is a flag value that is true when the flag is given alone.
type Bool bool

func (v *Bool) String() string      { return strconv.FormatBool(bool(*v)) }
func (v *Bool) Placeholder() string { return "" }
func (v *Bool) IsBoolFlag() bool    { return true }
func (v *Bool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("not true or false")
	}
	*v = Bool(b)
	return nil
}

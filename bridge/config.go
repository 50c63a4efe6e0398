package bridge

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"sshbridge/auth"
)

// Config holds the SSH-side settings. The zero value of each field means the
// default documented beside it; Validate fills them in.
type Config struct {
	// DefaultCommand is what a shell request runs. Default "bash".
	DefaultCommand string
	// EnvAllow lists the names of client environment variables (SendEnv,
	// SetEnv) passed into the one-off, besides LANG and LC_*. A trailing "*"
	// matches a prefix.
	EnvAllow []string
	// Size is the container size asked for. Default "" lets the platform choose.
	Size string
	// MaxSessions caps the session channels open at once on one connection,
	// as OpenSSH's MaxSessions. Default 10.
	MaxSessions int
	// MaxOneOffsPerKey caps the one-offs one key runs at once, across all
	// its connections to this bridge (MaxSessions counts one connection
	// only). Sessions served by the bridge itself (SFTP, legacy scp) do not
	// count. A session past it ends with ExitKeyLimit before the platform
	// is asked. Default 8 (DefaultMaxOneOffsPerKey).
	MaxOneOffsPerKey int
	// LoginGraceTime is how long a connection may take to authenticate,
	// as OpenSSH's LoginGraceTime. Default 30 s.
	LoginGraceTime time.Duration
	// ClientAliveInterval is the time between keepalive requests the bridge
	// sends, as OpenSSH's ClientAliveInterval. Default 15 s; negative turns
	// them off.
	ClientAliveInterval time.Duration
	// ClientAliveCountMax is how many keepalive intervals may pass without an
	// answer before the connection is dropped. Default 3.
	ClientAliveCountMax int
	// IdleTimeout closes a connection that has had no session open for
	// this long. Zero means never.
	IdleTimeout time.Duration
	// WaitTimeout bounds reading the exit code after the output ended.
	// Default 30 s.
	WaitTimeout time.Duration
	// Version is the software version in the SSH identification string.
	Version string

	// ConnectionModeApps are patterns of the apps whose connections use
	// connection mode (connmode.go) when neither the user name nor the
	// key's session-mode option chose: OpenSSH-style patterns ("*", "?",
	// a leading "!" excludes). Empty: none. Needs Deps.Agent.
	ConnectionModeApps []string
	// ConnectionLinger keeps a connection-mode one-off this long after
	// its connection ended, for the next connection-mode connection of
	// the same key to the same app. Zero: it ends with the connection.
	ConnectionLinger time.Duration

	// RecordApps are patterns of the apps whose terminal sessions (shell or
	// exec with a pty) are recorded as asciicast v2 files (record.go,
	// package recording): OpenSSH-style patterns as ConnectionModeApps.
	// Empty: none.
	RecordApps []string
	// RecordDir is the directory of the recordings, made with mode 0700 if
	// missing. Required when RecordApps is set.
	RecordDir string
	// RecordInput records what the user types too ("i" events). False:
	// output and window changes only, since input holds what prompts that
	// do not echo (passwords) were given.
	RecordInput bool

	// MaxStartups caps the unauthenticated connections held at once, as
	// OpenSSH's MaxStartups (start:rate:full, random early drop); a
	// connection beyond it is closed before the key exchange. Zero:
	// auth.DefaultMaxStartups (300:30:1000).
	MaxStartups auth.MaxStartups
	// PerSourceMaxStartups caps the unauthenticated connections from one
	// source (an IPv4 address or an IPv6 /64), as OpenSSH's
	// PerSourceMaxStartups. Zero: auth.DefaultPerSourceMaxStartups (250).
	PerSourceMaxStartups int
	// PerSourcePenalties are the penalties a source earns by connections
	// that fail, as OpenSSH's PerSourcePenalties, with what a penalty does
	// here (auth.Penalties). Zero: auth.DefaultPenalties.
	PerSourcePenalties auth.Penalties
	// PerSourcePenaltyExemptList names the sources never penalised, as
	// OpenSSH's PerSourcePenaltyExemptList. Zero: none.
	PerSourcePenaltyExemptList auth.ExemptList
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\*?$`)

// Validate checks the settings and fills in the defaults.
func (c *Config) Validate() error {
	if c.DefaultCommand == "" {
		c.DefaultCommand = DefaultCommand
	}
	for _, name := range c.EnvAllow {
		if !envNamePattern.MatchString(name) {
			return fmt.Errorf("env allow-list: %q is not a variable name (letters, digits, underscore, optional trailing *)", name)
		}
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxSessions < 0 {
		return errors.New("max sessions must be positive")
	}
	if c.MaxOneOffsPerKey == 0 {
		c.MaxOneOffsPerKey = DefaultMaxOneOffsPerKey
	}
	if c.MaxOneOffsPerKey < 0 {
		return errors.New("max one-offs per key must be positive")
	}
	if c.LoginGraceTime == 0 {
		c.LoginGraceTime = DefaultLoginGraceTime
	}
	if c.LoginGraceTime < 0 {
		return errors.New("login grace time must be positive")
	}
	if c.ClientAliveInterval == 0 {
		c.ClientAliveInterval = DefaultClientAliveInterval
	}
	if c.ClientAliveCountMax == 0 {
		c.ClientAliveCountMax = DefaultClientAliveCountMax
	}
	if c.ClientAliveCountMax < 0 {
		return errors.New("keepalive count must be positive")
	}
	if c.IdleTimeout < 0 {
		return errors.New("idle timeout must not be negative")
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if !c.MaxStartups.IsZero() {
		if err := c.MaxStartups.Validate(); err != nil {
			return fmt.Errorf("max startups: %w", err)
		}
	}
	if c.PerSourceMaxStartups < 0 {
		return errors.New("per-source max startups must be positive")
	}
	if err := c.PerSourcePenalties.Validate(); err != nil && !c.PerSourcePenalties.IsZero() {
		return fmt.Errorf("per-source penalties: %w", err)
	}
	if err := checkAppPatterns("connection mode apps", c.ConnectionModeApps); err != nil {
		return err
	}
	if err := checkAppPatterns("record apps", c.RecordApps); err != nil {
		return err
	}
	if len(c.RecordApps) > 0 && c.RecordDir == "" {
		return errors.New("record apps: a recording directory is needed")
	}
	if c.ConnectionLinger < 0 {
		return errors.New("connection linger must not be negative")
	}
	if c.Version == "" {
		c.Version = "sshbridge"
	}
	if strings.ContainsAny(c.Version, " \r\n-") {
		return fmt.Errorf("version %q: no spaces, dashes or line breaks", c.Version)
	}
	return nil
}

// checkAppPatterns checks a list of app patterns as matchApps reads them.
func checkAppPatterns(setting string, patterns []string) error {
	for _, p := range patterns {
		q := strings.TrimPrefix(p, "!")
		_, err := path.Match(q, "")
		if q == "" || err != nil {
			return fmt.Errorf("%s: %q is not a pattern (app names with * and ?, a leading ! excludes)", setting, p)
		}
	}
	return nil
}

// envAllowed says whether a client may set the variable name.
func (c *Config) envAllowed(name string) bool {
	if name == "LANG" || strings.HasPrefix(name, "LC_") {
		return true
	}
	for _, pattern := range c.EnvAllow {
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == pattern {
			return true
		}
	}
	return false
}

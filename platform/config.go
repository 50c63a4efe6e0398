package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"sshbridge/appname"
)

// Config of the embedded platform. Zero values have the documented defaults.
type Config struct {
	APIToken          string            // required: the API token clients exchange for a bearer token
	Apps              []string          // empty: every valid app name (appname.Valid) exists
	AppQuota          int               // one-offs alive per app; 0 => 10
	TotalQuota        int               // one-offs alive in all; 0 => 50
	MaxUploadBytes    int64             // per uploaded file; 0 => 100 MiB
	AttachTimeout     time.Duration     // a one-off never attached is dropped; 0 => 2 min
	InactivityTimeout time.Duration     // no data either way => kill, /wait 408; 0 => 30 min
	TokenTTL          time.Duration     // bearer token lifetime; 0 => 1 h
	Env               map[string]string // the app environment, added to every one-off
	RunAs             string            // user to run one-offs as when root; "" => "nobody"
	// StateDir holds the one-off dirs (their private /tmp). Several
	// platforms may share one: at start a platform removes the dirs that
	// platforms which died left (kill -9, a crash), never one a live
	// platform or one-off still holds. "" => ssh-bridge-platform-<uid>
	// under os.TempDir(), shared by every platform of the user; New fails
	// when that name is taken by another user or readable by others.
	StateDir  string
	PublicURL string       // base of operation and attach URLs; "" => from the listener
	Logger    *slog.Logger // nil => discard

	// Protect are paths one-offs must neither read nor write, whatever
	// their permissions: each directory is hidden under an empty read-only
	// one; each file is masked (opening it fails) and its directory made
	// read-only, so that it cannot be replaced; a path that does not exist
	// makes its nearest existing directory read-only; no directory above
	// any of them can be renamed. Relative paths are taken from the
	// working directory. The state dir is always hidden. Nil: only the
	// state dir. Applies whenever one-offs are isolated (see
	// Platform.Isolated); each one-off's init sets it up before the
	// one-off is handed to it.
	Protect []string
	// RequireIsolation makes New fail with ErrNoIsolation when one-offs
	// could run only as the platform's own user, with Protect not hidden
	// from them (not root, and no user namespace that can hide it).
	// False: they then run so, and New logs a warning.
	RequireIsolation bool
	// HostNetwork gives one-offs the host's network: they can then reach
	// other hosts, and everything that listens on the host, its loopback
	// included (this platform's API among it). False: each isolated
	// one-off gets a network namespace of its own whose only interface is
	// a loopback, up, so that 127.0.0.1 in a one-off is that one-off's
	// alone (see Platform.OwnNetwork).
	HostNetwork bool
	// NoPipeMode withholds pipe mode (PROTOCOL.md section 4): a run asking
	// for "tty": false gets a terminal and no "tty": false in its answer,
	// as from a platform without the extension (Scalingo today).
	NoPipeMode bool
}

// Defaults for the zero values of Config, as Scalingo documents its own
// limits.
const (
	DefaultAppQuota          = 10
	DefaultTotalQuota        = 50
	DefaultMaxUploadBytes    = 100 << 20
	DefaultAttachTimeout     = 2 * time.Minute
	DefaultInactivityTimeout = 30 * time.Minute
	defaultTokenTTL          = time.Hour
	DefaultRunAs             = "nobody"
)

// Validate reports the first problem of the configuration.
func (c Config) Validate() error {
	if c.APIToken == "" {
		return errors.New("platform config: an API token is required")
	}
	for _, a := range c.Apps {
		if !appname.Valid(a) {
			return fmt.Errorf("platform config: invalid app name %q", a)
		}
	}
	if c.AppQuota < 0 || c.TotalQuota < 0 || c.MaxUploadBytes < 0 {
		return errors.New("platform config: quotas and sizes must not be negative")
	}
	if c.AttachTimeout < 0 || c.InactivityTimeout < 0 || c.TokenTTL < 0 {
		return errors.New("platform config: timeouts must not be negative")
	}
	for _, p := range c.Protect {
		if strings.TrimSpace(p) == "" {
			return errors.New("platform config: an empty protected path")
		}
		if abs, err := filepath.Abs(p); err != nil || abs == "/" {
			return fmt.Errorf("platform config: protected path %q: the root cannot be hidden", p)
		}
	}
	for k := range c.Env {
		if !validEnvName(k) {
			return fmt.Errorf("platform config: invalid environment variable name %q", k)
		}
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("platform config: public URL %q is not http(s)", c.PublicURL)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.AppQuota == 0 {
		c.AppQuota = DefaultAppQuota
	}
	if c.TotalQuota == 0 {
		c.TotalQuota = DefaultTotalQuota
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.AttachTimeout == 0 {
		c.AttachTimeout = DefaultAttachTimeout
	}
	if c.InactivityTimeout == 0 {
		c.InactivityTimeout = DefaultInactivityTimeout
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = defaultTokenTTL
	}
	if c.RunAs == "" {
		c.RunAs = DefaultRunAs
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	protect := make([]string, 0, len(c.Protect))
	for _, p := range c.Protect {
		abs, _ := filepath.Abs(p) // checked by Validate
		protect = append(protect, abs)
	}
	c.Protect = protect
	return c
}

// validEnvName refuses names the environment block cannot carry.
func validEnvName(k string) bool {
	return k != "" && !strings.ContainsAny(k, "=\x00")
}

package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Config says where the keys are. Zero values are documented per field.
type Config struct {
	// AuthorizedKeysFile is an OpenSSH authorized_keys file; "" for none.
	AuthorizedKeysFile string
	// AuthorizedKeysFiles are more files of the same format (such as
	// DefaultAuthorizedKeys' ~/.ssh/id_*.pub), read after AuthorizedKeysFile.
	AuthorizedKeysFiles []string
	// TrustedUserCAKeysFile lists CA keys whose user certificates are
	// accepted for the apps named in their principals (sshd's
	// TrustedUserCAKeys); "" for none.
	TrustedUserCAKeysFile string
	// RevokedKeysFile is an OpenSSH KRL or a list of public keys (sshd's
	// RevokedKeys); "" for none.
	RevokedKeysFile string

	// ReloadInterval is how often the files are checked for changes.
	// 0 => 1 s; negative: only Reload reloads.
	ReloadInterval time.Duration

	// Logger receives the audit log; nil discards it.
	Logger *slog.Logger
	// Now is the clock for expiry and certificates; nil => time.Now.
	Now func() time.Time
	// Location is the time zone of expiry-time values without a Z suffix
	// (sshd uses local time); nil => time.Local.
	Location *time.Location
}

// Validate checks the fields that New cannot default.
func (c *Config) Validate() error {
	if len(c.keyFiles()) == 0 && c.TrustedUserCAKeysFile == "" {
		return fmt.Errorf("%w: no authorized keys file and no trusted CA keys file", ErrNoKeys)
	}
	if slices.Contains(c.AuthorizedKeysFiles, "") {
		return errors.New("empty name in AuthorizedKeysFiles")
	}
	return nil
}

func (c *Config) keyFiles() []string {
	var files []string
	if c.AuthorizedKeysFile != "" {
		files = append(files, c.AuthorizedKeysFile)
	}
	return append(files, c.AuthorizedKeysFiles...)
}

func (c *Config) watchedFiles() []string {
	files := c.keyFiles()
	if c.TrustedUserCAKeysFile != "" {
		files = append(files, c.TrustedUserCAKeysFile)
	}
	if c.RevokedKeysFile != "" {
		files = append(files, c.RevokedKeysFile)
	}
	return files
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"sshbridge/auth"
	"sshbridge/objstage"
	"sshbridge/oneoff"
	"sshbridge/platform"
)

// runCheck is `bridge check [flags]`, as `sshd -t`: it reads the
// configuration the bridge would run with (the same flags and variables)
// and every file it names, with the loaders the bridge uses, and says each
// problem on stderr as one line that starts with the file (and line) or
// the setting at fault. It starts nothing, binds nothing and writes
// nothing. Exit 0 with nothing on stdout when the bridge would start with
// this configuration; 1 when a problem was found; 2 for a command line or
// variable that cannot be read, as for the bridge itself. With
// --print-config, the configuration is printed after a check that passed.
func runCheck(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseBridgeFlags(args)
	if err != nil {
		return usageError(err, stdout, stderr, writeBridgeUsage)
	}
	problems, notes := checkConfig(cfg)
	for _, n := range notes {
		fmt.Fprintln(stderr, n)
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if len(problems) > 0 {
		return exitError
	}
	if cfg.printConfig {
		writeConfig(stdout, cfg)
	}
	return exitOK
}

// checkConfig returns every problem that would keep the bridge from
// starting or serving with cfg, and notes on what it would do on its own
// at start (make a host key) or warn about.
func checkConfig(cfg *bridgeFlags) (problems []error, notes []string) {
	add := func(err error) {
		if err != nil {
			problems = append(problems, err)
		}
	}
	// The API token and the PaaS's URLs.
	token, err := readAPIToken(cfg)
	add(err)
	if cfg.apiURL != "" && err == nil {
		_, err := oneoff.New(oneoff.Config{APIURL: cfg.apiURL, AuthURL: cfg.authURL, APIToken: token, StartTimeout: cfg.startTimeout})
		add(err)
	}
	if cfg.apiTokenFile != "" && err == nil {
		if st, err := os.Stat(cfg.apiTokenFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			notes = append(notes, fmt.Sprintf("%s: warning: permissions %#o let others than its owner read the API token (want 0600 or 0400)", cfg.apiTokenFile, st.Mode().Perm()))
		}
	}

	// Who may connect: the same files, read by the same parsers.
	ac := auth.Config{
		AuthorizedKeysFile:    cfg.authorizedKeys,
		TrustedUserCAKeysFile: cfg.trustedUserCAKeys,
		RevokedKeysFile:       cfg.revoked,
	}
	usable := true
	if ac.AuthorizedKeysFile == "" && ac.TrustedUserCAKeysFile == "" {
		files, err := auth.DefaultAuthorizedKeys()
		if err != nil {
			add(err)
			usable = false
		}
		ac.AuthorizedKeysFiles = files
	}
	for _, f := range []struct{ name, file, holds string }{
		{"authorized-keys", cfg.authorizedKeys, "the public keys that may connect, one a line as in ~/.ssh/authorized_keys"},
		{"trusted-user-ca-keys", cfg.trustedUserCAKeys, "the CA public keys whose user certificates are accepted, one a line"},
		{"revoked-keys", cfg.revoked, "an OpenSSH KRL (ssh-keygen -k) or revoked public keys, one a line"},
	} {
		if err := keyFileUsable(cfg, f.name, f.file, f.holds); err != nil {
			add(err)
			usable = false
		}
	}
	if usable {
		keyProblems, warnings := auth.Check(ac)
		problems = append(problems, keyProblems...)
		for _, w := range warnings {
			notes = append(notes, "warning: "+w)
		}
	}

	// The host key: read and parsed, never made here.
	if cfg.hostKey != "" {
		_, err := auth.LoadHostKey(cfg.hostKey)
		add(settingError(cfg, "host-key", err))
	} else {
		file := filepath.Join(cfg.dataDir, auth.HostKeyName)
		if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) {
			notes = append(notes, fmt.Sprintf("%s: no host key yet: the bridge makes one (ed25519, mode 0600) at its first start", file))
		} else {
			_, err := auth.LoadHostKey(file)
			add(err)
		}
	}

	// Where the bridge writes: the data dir (host key, staging area, the
	// embedded platform's state) and the listen address file's directory.
	add(settingError(cfg, "data-dir", dirWritable(cfg.dataDir)))
	for _, sub := range []string{"uploads", "platform"} {
		dir := filepath.Join(cfg.dataDir, sub)
		if _, err := os.Lstat(dir); err == nil {
			add(settingError(cfg, "data-dir", dirWritable(dir)))
		}
	}
	// The S3 staging area: its key file and its bucket, as the start reads them.
	if cfg.stagingURL != "" {
		if _, err := objstage.ReadKeyFile(cfg.stagingKeyFile); err != nil {
			add(settingError(cfg, "staging-key-file", err))
		} else if st, err := os.Stat(cfg.stagingKeyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			notes = append(notes, fmt.Sprintf("%s: warning: permissions %#o let others than its owner read the staging key (want 0600 or 0400)", cfg.stagingKeyFile, st.Mode().Perm()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		add(settingError(cfg, "staging-url", objstage.CheckBucket(ctx, cfg.stagingURL, nil)))
		cancel()
	}
	if cfg.listenAddressFile != "" {
		add(settingError(cfg, "listen-address-file", dirWritable(filepath.Dir(cfg.listenAddressFile))))
	}
	if len(cfg.bridge.RecordApps) > 0 {
		add(settingError(cfg, "record-dir", dirWritable(cfg.bridge.RecordDir)))
	}

	// Connection mode's agents, found as the bridge finds them at start.
	if _, explicit, err := agentBinaries(cfg); err != nil {
		if explicit {
			add(settingError(cfg, "agent-dir", err))
		} else {
			notes = append(notes, "warning: connection mode is off: no agent for the one-offs: "+err.Error())
		}
	}

	// The embedded platform runs one-offs as an unprivileged user when the
	// bridge is root.
	if cfg.apiURL == "" && os.Geteuid() == 0 {
		if u, err := user.Lookup(platform.DefaultRunAs); err != nil {
			add(fmt.Errorf("embedded platform: run-as user %q: %w", platform.DefaultRunAs, err))
		} else if u.Uid == "0" {
			add(fmt.Errorf("embedded platform: run-as user %q is root", platform.DefaultRunAs))
		}
	}
	return problems, notes
}

// settingError prefixes err with the setting that named the file, as the
// user gave it; nil stays nil.
func settingError(cfg *bridgeFlags, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", cfg.setting(name), err)
}

// dirWritable says whether this process could make files in dir, without
// making any: an existing directory must allow writing and searching to
// this process's effective user (access(2) with AT_EACCESS, which also
// refuses a read-only file system); a missing one is made at start, so the
// nearest directory above it that exists must allow the same.
func dirWritable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && p != filepath.Dir(p):
			continue
		case err != nil:
			return err
		case !st.IsDir():
			return fmt.Errorf("%s: not a directory", p)
		}
		if err := unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			what := "cannot write in it"
			if p != abs {
				what = "does not exist, and cannot be made in " + p
			}
			return fmt.Errorf("%s: %s: %v", abs, what, err)
		}
		return nil
	}
}

// secretSetting says whether a setting's value is a secret that
// --print-config must not show: a token, password or secret itself, not
// the name of the file that holds it.
func secretSetting(name string) bool {
	if strings.HasSuffix(name, "-file") {
		return false
	}
	for _, w := range []string{"token", "secret", "password"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// writeConfig is --print-config, as `sshd -T`: the effective value of
// every setting after flags and environment, one "name value" line each,
// named as the flag without its dashes, in --help's order. An empty value
// is "none". Secrets never show: the API token is "api-token ***" when one
// is set (in ONEOFF_API_TOKEN or through --api-token-file), absent
// otherwise.
func writeConfig(w io.Writer, cfg *bridgeFlags) {
	for _, s := range cfg.flags.Settings() {
		switch s.Name {
		case "version", "print-config":
			continue
		case "api-token":
			if cfg.apiTokenFile != "" || strings.TrimSpace(os.Getenv(apiTokenEnv)) != "" {
				fmt.Fprintln(w, "api-token ***")
			}
			continue
		}
		v := s.Value
		if s.Name == "client-alive-interval" && cfg.bridge.ClientAliveInterval < 0 {
			v = "0s" // kept as -1 inside: none, as 0 says in OpenSSH
		}
		// The files the defaults name, as the bridge will use them.
		switch {
		case s.Name == "host-key" && v == "":
			v = filepath.Join(cfg.dataDir, auth.HostKeyName)
		case s.Name == "authorized-keys" && v == "" && cfg.trustedUserCAKeys == "":
			if files, err := auth.DefaultAuthorizedKeys(); err == nil {
				v = strings.Join(files, ",")
			}
		}
		switch {
		case secretSetting(s.Name) && v != "":
			v = "***"
		case v == "":
			v = "none"
		}
		fmt.Fprintf(w, "%s %s\n", s.Name, v)
	}
}

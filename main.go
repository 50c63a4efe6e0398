// Command bridge is an SSH server in front of a PaaS's one-off containers:
// `ssh app@bridge` opens a shell in a new one-off container of app, `ssh
// app@bridge cmd` runs one command there, and scp/sftp uploads land in
// /tmp/uploads of the app's next one-off.
//
// Usage:
//
//	bridge [flags]                   run the SSH bridge
//	bridge platform --listen ADDR    run the embedded platform alone
//
// Every flag can also be set by the environment variable named in its help.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/auth"
	"sshbridge/bridge"
	"sshbridge/oneoff"
	"sshbridge/platform"
	"sshbridge/scp"
	"sshbridge/sftp"
	"sshbridge/uploads"
)

func main() {
	// A one-off's init process is this binary started again by the
	// embedded platform; it never returns from here.
	platform.RunInitIfRequested()
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "platform" {
		return runPlatform(args[1:])
	}
	cfg, err := parseBridgeFlags(args)
	if err != nil {
		return usageError(err)
	}
	log := newLogger(cfg.logLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveBridge(ctx, cfg, log); err != nil {
		log.Error("bridge stopped", "err", err)
		fmt.Fprintf(os.Stderr, "bridge: %v\n", err)
		return 1
	}
	return 0
}

func usageError(err error) int {
	if errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(os.Stderr, "bridge: %v\n", err)
	return 2
}

// serveBridge wires the parts in order: host key, access control, the
// platform (embedded unless an API URL is set), the one-off client, the
// staging area, then the SSH server; and takes them down in reverse.
func serveBridge(ctx context.Context, cfg *bridgeFlags, log *slog.Logger) error {
	hostKey, err := loadHostKey(cfg)
	if err != nil {
		return err
	}
	authority, err := newAuthority(ctx, cfg, log)
	if err != nil {
		return err
	}

	apiURL, authURL, apiToken := cfg.apiURL, cfg.authURL, cfg.apiToken
	if apiURL == "" {
		embedded, err := startEmbeddedPlatform(cfg, log)
		if err != nil {
			return err
		}
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			embedded.Shutdown(shutdownCtx)
		}()
		apiURL, authURL, apiToken = embedded.url, "", embedded.token
	}
	client, err := oneoff.New(oneoff.Config{
		APIURL:      apiURL,
		AuthURL:     authURL,
		APIToken:    apiToken,
		PollTimeout: cfg.pollTimeout,
		Logger:      log.With("component", "oneoff"),
	})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()

	staging, err := newStaging(cfg, log)
	if err != nil {
		return err
	}
	defer staging.Close()

	srv, err := bridge.New(cfg.bridge, bridge.Deps{
		Platform: client,
		Auth:     authority,
		HostKey:  hostKey,
		Uploads:  staging,
		Logger:   log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	log.Info("bridge listening", "addr", ln.Addr().String(), "platform", apiURL,
		"host_key", gossh.FingerprintSHA256(hostKey.PublicKey()))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: waiting for open sessions", "grace", cfg.shutdownGrace)
	// Live sessions get a bounded time to finish; then their connections
	// are closed, which ends their one-offs.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	log.Info("bridge stopped")
	return nil
}

func loadHostKey(cfg *bridgeFlags) (gossh.Signer, error) {
	if cfg.hostKey != "" {
		return auth.LoadHostKey(cfg.hostKey)
	}
	return auth.EnsureHostKey(cfg.dataDir)
}

// embeddedPlatform is the platform the bridge runs in-process when no API
// URL is given. The bridge reaches it over loopback HTTP like any PaaS.
type embeddedPlatform struct {
	*platform.Platform
	url, token string
}

func startEmbeddedPlatform(cfg *bridgeFlags, log *slog.Logger) (*embeddedPlatform, error) {
	token := randomToken()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded platform: %w", err)
	}
	url := "http://" + ln.Addr().String()
	p, err := platform.New(platform.Config{
		APIToken:          token,
		PublicURL:         url,
		AppQuota:          cfg.platformAppQuota,
		TotalQuota:        cfg.platformTotalQuota,
		InactivityTimeout: cfg.platformInactivity,
		Logger:            log.With("component", "platform"),
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	go p.Serve(ln)
	return &embeddedPlatform{Platform: p, url: url, token: token}, nil
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return "tk-embedded-" + hex.EncodeToString(b[:])
}

// runPlatform runs the embedded platform alone, for other clients.
func runPlatform(args []string) int {
	cfg, err := parsePlatformFlags(args)
	if err != nil {
		return usageError(err)
	}
	log := newLogger(cfg.logLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := platform.New(cfg.platform)
	if err != nil {
		return usageError(err)
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bridge platform: %v\n", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	log.Info("platform listening", "url", "http://"+ln.Addr().String())
	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "bridge platform: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Shutdown(shutdownCtx)
	return 0
}

// errHelp is returned when the user asked for the usage text.
var errHelp = flag.ErrHelp

// bridgeFlags is the bridge's configuration as flags and environment give it.
type bridgeFlags struct {
	listen, dataDir, hostKey   string
	authorizedKeys             string
	trustedUserCAKeys, revoked string
	apiURL, authURL, apiToken  string
	pollTimeout, shutdownGrace time.Duration
	uploadMaxFile, uploadQuota int64
	uploadExpiry               time.Duration
	platformAppQuota           int
	platformTotalQuota         int
	platformInactivity         time.Duration
	logLevel                   slog.Level
	bridge                     bridge.Config
}

// envFlags binds each flag to its environment variable. A flag on the
// command line wins over the environment.
type envFlags struct {
	fs  *flag.FlagSet
	env map[string]string // flag name -> variable
}

func newEnvFlags(name string) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &envFlags{fs: fs, env: map[string]string{}}
}

func (e *envFlags) bind(flagName, envName string) {
	e.env[flagName] = envName
	f := e.fs.Lookup(flagName)
	f.Usage += " (env " + envName + ")"
}

func (e *envFlags) parse(args []string) error {
	for flagName, envName := range e.env {
		if v, ok := os.LookupEnv(envName); ok && v != "" {
			if err := e.fs.Set(flagName, v); err != nil {
				return fmt.Errorf("%s=%q: %w", envName, v, err)
			}
		}
	}
	if err := e.fs.Parse(args); err != nil {
		return err
	}
	if e.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", e.fs.Arg(0))
	}
	return nil
}

// byteSize is a flag value of bytes with an optional K, M, G suffix (powers of 1024).
type byteSize struct{ n *int64 }

func (b byteSize) String() string {
	if b.n == nil {
		return "0"
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b byteSize) Set(s string) error {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return fmt.Errorf("%q is not a size (a whole number of bytes, optionally with K, M or G)", s)
	}
	*b.n = v * mult
	return nil
}

// listValue is a comma-separated list flag.
type listValue struct{ list *[]string }

func (l listValue) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l listValue) Set(s string) error {
	*l.list = nil
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l.list = append(*l.list, item)
		}
	}
	return nil
}

// levelValue is a log level flag: debug, info, warn or error.
type levelValue struct{ l *slog.Level }

func (v levelValue) String() string {
	if v.l == nil {
		return "info"
	}
	return strings.ToLower(v.l.String())
}

func (v levelValue) Set(s string) error { return v.l.UnmarshalText([]byte(s)) }

func defaultDataDir() string {
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "ssh-bridge")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "ssh-bridge")
	}
	return "ssh-bridge-data"
}

func parseBridgeFlags(args []string) (*bridgeFlags, error) {
	c := &bridgeFlags{logLevel: slog.LevelInfo}
	e := newEnvFlags("bridge")
	fs := e.fs
	b := &c.bridge
	var apiTokenFlag, apiTokenFile string
	fs.StringVar(&c.listen, "listen", "127.0.0.1:2222", "address to accept SSH connections on")
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "directory for the host key and the upload staging area")
	fs.StringVar(&c.hostKey, "host-key", "", "an existing OpenSSH private host key (default: one made once and kept in the data directory)")
	fs.StringVar(&c.authorizedKeys, "authorized-keys", "", "OpenSSH authorized_keys file of who may connect (default: ~/.ssh/authorized_keys and ~/.ssh/id_*.pub of the user running the bridge)")
	fs.StringVar(&c.trustedUserCAKeys, "trusted-user-ca-keys", "", "public keys of CAs whose user certificates are accepted, as OpenSSH's TrustedUserCAKeys")
	fs.StringVar(&c.revoked, "revoked-keys", "", "revoked keys and certificates: an OpenSSH KRL or a list of public keys")
	fs.StringVar(&c.apiURL, "api-url", "", "one-off API of a PaaS (default: run the embedded platform)")
	fs.StringVar(&c.authURL, "auth-url", "", "token exchange API of the PaaS (default: the API URL)")
	fs.StringVar(&apiTokenFlag, "api-token", "", "refused: give the token in ONEOFF_API_TOKEN or --api-token-file, since a flag shows in process listings")
	fs.StringVar(&apiTokenFile, "api-token-file", "", "file holding the PaaS API token (or set ONEOFF_API_TOKEN)")
	fs.DurationVar(&c.pollTimeout, "start-timeout", 2*time.Minute, "how long a one-off may take to start")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "how long open sessions may run on after SIGTERM")
	fs.StringVar(&b.DefaultCommand, "default-command", "bash", "command a shell session runs")
	fs.Var(listValue{&b.EnvAllow}, "env-allow", "comma-separated variable names clients may set besides LANG and LC_* (trailing * for a prefix)")
	fs.StringVar(&b.Size, "size", "", "container size to ask for (default: the platform's)")
	fs.IntVar(&b.MaxSessions, "max-sessions", 10, "session channels open at once per connection")
	fs.DurationVar(&b.LoginGraceTime, "login-grace-time", 30*time.Second, "time a connection has to authenticate")
	fs.DurationVar(&b.KeepaliveInterval, "keepalive-interval", 15*time.Second, "time between keepalive requests to clients (negative: none)")
	fs.IntVar(&b.KeepaliveCountMax, "keepalive-count-max", 3, "unanswered keepalive intervals before a client is dropped")
	fs.DurationVar(&b.IdleTimeout, "idle-timeout", 0, "close a connection with no open session after this long (0: never)")
	c.uploadMaxFile, c.uploadQuota = 100<<20, 1<<30
	fs.Var(byteSize{&c.uploadMaxFile}, "upload-max-file-size", "largest file that may be staged (default 100M)")
	fs.Var(byteSize{&c.uploadQuota}, "upload-quota", "pending bytes per user across apps (default 1G)")
	fs.DurationVar(&c.uploadExpiry, "upload-expiry", 24*time.Hour, "time after which a pending upload is dropped")
	fs.IntVar(&c.platformAppQuota, "platform-app-quota", 10, "embedded platform: one-offs at once per app")
	fs.IntVar(&c.platformTotalQuota, "platform-total-quota", 50, "embedded platform: one-offs at once in all")
	fs.DurationVar(&c.platformInactivity, "platform-inactivity-timeout", 30*time.Minute, "embedded platform: stop a one-off after this long without data")
	fs.Var(levelValue{&c.logLevel}, "log-level", "debug, info, warn or error")
	for name, env := range map[string]string{
		"listen": "BRIDGE_LISTEN", "data-dir": "BRIDGE_DATA_DIR", "host-key": "BRIDGE_HOST_KEY",
		"authorized-keys": "BRIDGE_AUTHORIZED_KEYS", "trusted-user-ca-keys": "BRIDGE_TRUSTED_USER_CA_KEYS",
		"revoked-keys": "BRIDGE_REVOKED_KEYS", "api-url": "ONEOFF_API_URL", "auth-url": "ONEOFF_AUTH_URL",
		"api-token-file": "ONEOFF_API_TOKEN_FILE", "start-timeout": "BRIDGE_START_TIMEOUT",
		"shutdown-grace": "BRIDGE_SHUTDOWN_GRACE", "default-command": "BRIDGE_DEFAULT_COMMAND",
		"env-allow": "BRIDGE_ENV_ALLOW", "size": "BRIDGE_SIZE", "max-sessions": "BRIDGE_MAX_SESSIONS",
		"login-grace-time": "BRIDGE_LOGIN_GRACE_TIME", "keepalive-interval": "BRIDGE_KEEPALIVE_INTERVAL",
		"keepalive-count-max": "BRIDGE_KEEPALIVE_COUNT_MAX", "idle-timeout": "BRIDGE_IDLE_TIMEOUT",
		"upload-max-file-size": "BRIDGE_UPLOAD_MAX_FILE_SIZE", "upload-quota": "BRIDGE_UPLOAD_QUOTA",
		"upload-expiry": "BRIDGE_UPLOAD_EXPIRY", "platform-app-quota": "BRIDGE_PLATFORM_APP_QUOTA",
		"platform-total-quota":        "BRIDGE_PLATFORM_TOTAL_QUOTA",
		"platform-inactivity-timeout": "BRIDGE_PLATFORM_INACTIVITY_TIMEOUT", "log-level": "BRIDGE_LOG_LEVEL",
	} {
		e.bind(name, env)
	}
	if err := e.parse(args); err != nil {
		return nil, err
	}
	if apiTokenFlag != "" {
		return nil, errors.New("--api-token is refused: a flag shows in process listings; set ONEOFF_API_TOKEN or use --api-token-file")
	}
	token, err := readAPIToken(apiTokenFile)
	if err != nil {
		return nil, err
	}
	c.apiToken = token
	if c.apiURL != "" && c.apiToken == "" {
		return nil, errors.New("--api-url needs an API token: set ONEOFF_API_TOKEN or use --api-token-file")
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// readAPIToken takes the token from the file if one is named, else from
// ONEOFF_API_TOKEN.
func readAPIToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv("ONEOFF_API_TOKEN")), nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("api token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" || strings.ContainsAny(token, "\r\n\t ") {
		return "", fmt.Errorf("api token file %s: want one token on one line", file)
	}
	return token, nil
}

// platformFlags configures `bridge platform`.
type platformFlags struct {
	listen   string
	logLevel slog.Level
	platform platform.Config
}

func parsePlatformFlags(args []string) (*platformFlags, error) {
	c := &platformFlags{logLevel: slog.LevelInfo}
	e := newEnvFlags("bridge platform")
	fs := e.fs
	p := &c.platform
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve the one-off API on")
	fs.Var(listValue{&p.Apps}, "apps", "comma-separated app names that exist (default: any valid name)")
	fs.IntVar(&p.AppQuota, "app-quota", 10, "one-offs at once per app")
	fs.IntVar(&p.TotalQuota, "total-quota", 50, "one-offs at once in all")
	fs.Var(byteSize{&p.MaxUploadBytes}, "max-upload-size", "largest uploaded file (default 100M)")
	fs.DurationVar(&p.AttachTimeout, "attach-timeout", 2*time.Minute, "drop a one-off not attached within this time")
	fs.DurationVar(&p.InactivityTimeout, "inactivity-timeout", 30*time.Minute, "stop an attached one-off after this long without data")
	fs.StringVar(&p.RunAs, "run-as", "nobody", "user that runs the one-offs when started as root")
	fs.StringVar(&p.StateDir, "state-dir", "", "directory for the one-offs' private /tmp (default: a new temporary directory)")
	fs.StringVar(&p.PublicURL, "public-url", "", "base URL clients reach this server at (default: from the listen address)")
	fs.Var(levelValue{&c.logLevel}, "log-level", "debug, info, warn or error")
	for name, env := range map[string]string{
		"listen": "PLATFORM_LISTEN", "apps": "PLATFORM_APPS", "app-quota": "PLATFORM_APP_QUOTA",
		"total-quota": "PLATFORM_TOTAL_QUOTA", "max-upload-size": "PLATFORM_MAX_UPLOAD_SIZE",
		"attach-timeout": "PLATFORM_ATTACH_TIMEOUT", "inactivity-timeout": "PLATFORM_INACTIVITY_TIMEOUT",
		"run-as": "PLATFORM_RUN_AS", "state-dir": "PLATFORM_STATE_DIR", "public-url": "PLATFORM_PUBLIC_URL",
		"log-level": "PLATFORM_LOG_LEVEL",
	} {
		e.bind(name, env)
	}
	if err := e.parse(args); err != nil {
		return nil, err
	}
	p.APIToken = strings.TrimSpace(os.Getenv("ONEOFF_API_TOKEN"))
	if p.APIToken == "" {
		return nil, errors.New("platform: set ONEOFF_API_TOKEN to the API token clients must present")
	}
	c.platform.Logger = newLogger(c.logLevel).With("component", "platform")
	return c, p.Validate()
}

func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// newAuthority loads who may connect. With no key source named it takes
// the keys of the user running the bridge, so that a developer's own `ssh`
// works at once; with no key at all it refuses to start.
func newAuthority(ctx context.Context, cfg *bridgeFlags, log *slog.Logger) (*auth.Authority, error) {
	ac := auth.Config{
		AuthorizedKeysFile:    cfg.authorizedKeys,
		TrustedUserCAKeysFile: cfg.trustedUserCAKeys,
		RevokedKeysFile:       cfg.revoked,
		Logger:                log.With("component", "auth"),
	}
	if ac.AuthorizedKeysFile == "" && ac.TrustedUserCAKeysFile == "" {
		files, err := auth.DefaultAuthorizedKeys()
		if err != nil {
			return nil, err
		}
		ac.AuthorizedKeysFiles = files
		log.Info("no --authorized-keys given: accepting the keys of the user running the bridge", "files", strings.Join(files, ","))
	}
	a, err := auth.New(ac)
	if err != nil {
		return nil, err
	}
	go a.Watch(ctx)
	return a, nil
}

// stagingArea joins the upload staging area to the SSH side: SFTP and
// legacy scp fill it, the next one-off's start empties it.
type stagingArea struct {
	store *uploads.Store
	log   *slog.Logger
}

var _ bridge.Uploads = (*stagingArea)(nil)

func newStaging(cfg *bridgeFlags, log *slog.Logger) (*stagingArea, error) {
	store, err := uploads.Open(filepath.Join(cfg.dataDir, "uploads"), uploads.Limits{
		MaxFileSize: cfg.uploadMaxFile,
		UserQuota:   cfg.uploadQuota,
		Expiry:      cfg.uploadExpiry,
	}, log.With("component", "uploads"))
	if err != nil {
		return nil, err
	}
	return &stagingArea{store: store, log: log.With("component", "uploads")}, nil
}

func (s *stagingArea) Close() error { return s.store.Close() }

func (s *stagingArea) ServeSFTP(ctx context.Context, user, app string, ch io.ReadWriteCloser, stderr io.Writer) error {
	return sftp.Serve(ctx, ch, s.store.Scope(user, app), sftp.Options{Logger: s.log, Stderr: stderr})
}

func (s *stagingArea) IsSCP(command string) bool { return scp.IsCommand(command) }

func (s *stagingArea) SCP(ctx context.Context, user, app, command string, rw io.ReadWriter, stderr io.Writer) int {
	return scp.Run(ctx, rw, stderr, s.store.Scope(user, app), command, s.log)
}

func (s *stagingArea) Deliver(ctx context.Context, user, app string,
	send func(ctx context.Context, name string, size int64, r io.Reader) error,
	progress func(name string, done, total int64)) error {
	return s.store.Scope(user, app).Deliver(ctx, send, progress)
}

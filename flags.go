package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sshbridge/agent"
	"sshbridge/auth"
	"sshbridge/bridge"
	"sshbridge/cli"
	"sshbridge/objstage"
	"sshbridge/oneoff"
	"sshbridge/platform"
	"sshbridge/proxyprotocol"
	"sshbridge/sftp"
	"sshbridge/uploads"
)

// bridgeFlags is the bridge's configuration as flags and environment give it.
type bridgeFlags struct {
	version                     bool
	printConfig                 bool
	listen, dataDir, hostKey    string
	hostCertificates            []string
	listenAddressFile           string
	authorizedKeys              string
	trustedUserCAKeys, revoked  string
	apiURL, authURL             string
	startTimeout, shutdownGrace time.Duration
	uploadMaxFile, uploadQuota  int64
	uploadExpiry                time.Duration
	// The S3 staging area (objstage): empty URL for the local disk.
	stagingURL, stagingKeyFile string
	stagingSpoolSize           int64
	stagingLease               time.Duration
	sftpMaxOpen, sftpMaxTotal  int
	platformAppQuota           int
	platformTotalQuota         int
	platformInactivity         time.Duration
	oneOffHostNetwork          bool
	noPipeMode                 bool
	agentDir                   string
	logLevel                   slog.Level
	logFormat                  string
	metricsListen, auditLog    string
	debugListen                string
	bridge                     bridge.Config
	apiTokenFile               string
	// Admission, in OpenSSH's syntax; their checks parse them into bridge.
	maxStartups, penalties string
	penaltyExempt          []string
	// PROXY protocol: who must send a header; parsed by its check.
	proxyProtocolFrom []string
	proxyFrom         []netip.Prefix
	// drainTimeout bounds the sessions of a process that handed over.
	drainTimeout time.Duration
	// flags is the parsed set, to name a setting as the user gave it.
	flags *cli.FlagSet
}

// Names of the settings that other messages point to.
const (
	listenFlag  = "--listen"
	listenEnv   = "BRIDGE_LISTEN"
	apiTokenEnv = "ONEOFF_API_TOKEN"
	// proxyProtocolFromEnv is read by the bridge and by healthcheck.
	proxyProtocolFromEnv = "BRIDGE_PROXY_PROTOCOL_FROM"
)

// bridgeFlagSet defines the bridge's flags, each with its variable, into c.
func bridgeFlagSet(c *bridgeFlags, apiTokenFlag *string) *cli.FlagSet {
	fs := cli.NewFlagSet("bridge")
	fs.Commands = []string{"platform", "healthcheck", "version", "check"}
	b := &c.bridge
	fs.Bool(&c.version, "version", "", "print the version and exit")
	fs.Bool(&c.printConfig, "print-config", "", "print the effective configuration, one \"name value\" line per setting, secrets masked, and exit (as sshd -T)")
	fs.String(&c.listen, "listen", listenEnv, "127.0.0.1:2222", "address to accept SSH connections on").Arg("ADDR").Check(cli.HostPort(&c.listen))
	fs.String(&c.listenAddressFile, "listen-address-file", "BRIDGE_LISTEN_ADDRESS_FILE", "", "once listening, write the bound address (host:port, one line) to this file, replaced atomically").Arg("FILE").Default("none")
	fs.String(&c.dataDir, "data-dir", "BRIDGE_DATA_DIR", defaultDataDir(), "directory for the host key and the upload staging area").
		Arg("DIR").Check(cli.NonEmpty(&c.dataDir)).Default("$XDG_STATE_HOME/ssh-bridge or ~/.local/state/ssh-bridge")
	fs.String(&c.hostKey, "host-key", "BRIDGE_HOST_KEY", "", "an existing OpenSSH private host key, mode 0600").
		Arg("FILE").Default("made once and kept in the data directory")
	fs.List(&c.hostCertificates, "host-certificate", "BRIDGE_HOST_CERTIFICATE", "OpenSSH host certificates of the host key (ssh-keygen -s CA -h), comma-separated, presented beside it, as OpenSSH's HostCertificate").
		Arg("FILES").Default("none")
	fs.String(&c.authorizedKeys, "authorized-keys", "BRIDGE_AUTHORIZED_KEYS", "", "OpenSSH authorized_keys file of who may connect").
		Arg("FILE").Default("~/.ssh/authorized_keys and ~/.ssh/id_*.pub of the user running the bridge")
	fs.String(&c.trustedUserCAKeys, "trusted-user-ca-keys", "BRIDGE_TRUSTED_USER_CA_KEYS", "", "public keys of CAs whose user certificates are accepted (OpenSSH's TrustedUserCAKeys)").Arg("FILE")
	fs.String(&c.revoked, "revoked-keys", "BRIDGE_REVOKED_KEYS", "", "revoked keys and certificates: an OpenSSH KRL or a list of public keys").Arg("FILE")
	fs.String(&c.apiURL, "api-url", "ONEOFF_API_URL", "", "one-off API of a PaaS").Arg("URL").Default("none: run the embedded platform")
	fs.String(&c.authURL, "auth-url", "ONEOFF_AUTH_URL", "", "token exchange API of the PaaS").Arg("URL").Default("the API URL")
	fs.String(apiTokenFlag, "api-token", "", "", "refused: a flag shows in process listings; set "+apiTokenEnv+" or use --api-token-file").Arg("TOKEN").Default(cli.NoDefault)
	fs.String(&c.apiTokenFile, "api-token-file", "ONEOFF_API_TOKEN_FILE", "", "file holding the PaaS API token (or set "+apiTokenEnv+")").Arg("FILE")
	fs.Duration(&c.startTimeout, "start-timeout", "BRIDGE_START_TIMEOUT", oneoff.DefaultStartTimeout, "how long a one-off may take to start, with the wait for a free slot").Check(cli.Positive(&c.startTimeout))
	fs.Duration(&c.shutdownGrace, "shutdown-grace", "BRIDGE_SHUTDOWN_GRACE", 30*time.Second, "how long open sessions may run on after SIGTERM or SIGINT").Check(cli.NonNegative(&c.shutdownGrace))
	fs.Duration(&c.drainTimeout, "drain-timeout", "BRIDGE_DRAIN_TIMEOUT", time.Hour, "after a handover to a new process (SIGHUP), how long the old one's sessions may run on").Check(cli.NonNegative(&c.drainTimeout))
	fs.String(&b.DefaultCommand, "default-command", "BRIDGE_DEFAULT_COMMAND", bridge.DefaultCommand, "command a shell session runs").Arg("COMMAND").Check(cli.NonEmpty(&b.DefaultCommand))
	fs.List(&b.EnvAllow, "env-allow", "BRIDGE_ENV_ALLOW", "variable names clients may set besides LANG and LC_* (a trailing * matches a prefix)").Arg("NAMES").
		Check(func() error { return (&bridge.Config{EnvAllow: b.EnvAllow}).Validate() })
	fs.String(&b.Size, "size", "BRIDGE_SIZE", "", "container size to ask for").Arg("SIZE").Default("the platform's")
	fs.Int(&b.MaxSessions, "max-sessions", "BRIDGE_MAX_SESSIONS", bridge.DefaultMaxSessions, "session channels open at once per connection (OpenSSH's MaxSessions)").Check(cli.Positive(&b.MaxSessions))
	fs.Int(&b.MaxOneOffsPerKey, "max-one-offs-per-key", "BRIDGE_MAX_ONE_OFFS_PER_KEY", bridge.DefaultMaxOneOffsPerKey, "one-offs one key runs at once, across all its connections").Check(cli.Positive(&b.MaxOneOffsPerKey))
	fs.Duration(&b.LoginGraceTime, "login-grace-time", "BRIDGE_LOGIN_GRACE_TIME", bridge.DefaultLoginGraceTime, "time a connection has to authenticate (OpenSSH's LoginGraceTime)").Check(cli.Positive(&b.LoginGraceTime))
	fs.Duration(&b.ClientAliveInterval, "client-alive-interval", "BRIDGE_CLIENT_ALIVE_INTERVAL", bridge.DefaultClientAliveInterval, "time between keepalive requests to clients, 0 for none (OpenSSH's ClientAliveInterval)").
		Check(cli.NonNegative(&b.ClientAliveInterval))
	fs.Int(&b.ClientAliveCountMax, "client-alive-count-max", "BRIDGE_CLIENT_ALIVE_COUNT_MAX", bridge.DefaultClientAliveCountMax, "unanswered keepalive requests before a client is dropped (OpenSSH's ClientAliveCountMax)").Check(cli.Positive(&b.ClientAliveCountMax))
	fs.Alias("keepalive-interval", "BRIDGE_KEEPALIVE_INTERVAL", "client-alive-interval")
	fs.Alias("keepalive-count-max", "BRIDGE_KEEPALIVE_COUNT_MAX", "client-alive-count-max")
	fs.String(&c.maxStartups, "max-startups", "BRIDGE_MAX_STARTUPS", auth.DefaultMaxStartups.String(),
		"unauthenticated connections at once: from START on, RATE% of new ones are dropped, rising to all at FULL (OpenSSH's MaxStartups)").
		Arg("START:RATE:FULL").Check(func() (err error) { b.MaxStartups, err = auth.ParseMaxStartups(c.maxStartups); return err })
	fs.Int(&b.PerSourceMaxStartups, "per-source-max-startups", "BRIDGE_PER_SOURCE_MAX_STARTUPS", auth.DefaultPerSourceMaxStartups,
		"unauthenticated connections at once from one address, or IPv6 /64 (OpenSSH's PerSourceMaxStartups)").Check(cli.Positive(&b.PerSourceMaxStartups))
	fs.String(&c.penalties, "per-source-penalties", "BRIDGE_PER_SOURCE_PENALTIES", auth.DefaultPenalties.String(),
		"penalty time a source earns per failed connection, as OpenSSH's PerSourcePenalties; \"no\" for none (see README: Hardening)").
		Arg("KEYWORDS").Check(func() (err error) { b.PerSourcePenalties, err = auth.ParsePenalties(c.penalties); return err })
	fs.List(&c.penaltyExempt, "per-source-penalty-exempt-list", "BRIDGE_PER_SOURCE_PENALTY_EXEMPT_LIST",
		"addresses and CIDR blocks never penalised (OpenSSH's PerSourcePenaltyExemptList)").Arg("CIDRS").
		Check(func() (err error) {
			if len(c.penaltyExempt) > 0 {
				b.PerSourcePenaltyExemptList, err = auth.ParseExemptList(strings.Join(c.penaltyExempt, ","))
			}
			return err
		})
	fs.List(&b.ConnectionModeApps, "connection-mode-apps", "BRIDGE_CONNECTION_MODE_APPS",
		"apps whose connections use connection mode (one one-off per connection) unless the key's session-mode option says otherwise: patterns with * and ?, a leading ! excludes").Arg("PATTERNS").
		Default("none: per-session mode").Check(func() error { return (&bridge.Config{ConnectionModeApps: b.ConnectionModeApps}).Validate() })
	fs.Duration(&b.ConnectionLinger, "connection-linger", "BRIDGE_CONNECTION_LINGER", 0,
		"keep a connection-mode one-off this long after its connection ended, for the next connection of the same key to the same app").Default("0: it ends with the connection").Check(cli.NonNegative(&b.ConnectionLinger))
	fs.String(&c.agentDir, "agent-dir", "BRIDGE_AGENT_DIR", agent.DefaultBinariesDir,
		"directory of the connection-mode agents, linux-amd64 and linux-arm64 (the release image has both); the bridge's own binary serves its own architecture").Arg("DIR")
	fs.List(&c.proxyProtocolFrom, "proxy-protocol-from", proxyProtocolFromEnv,
		"load balancers whose connections open with a PROXY protocol header (v1 or v2), required from them and refused from others: addresses and CIDR blocks").Arg("CIDRS").Default("none: no header is read").
		Check(func() (err error) { c.proxyFrom, err = proxyprotocol.ParseFrom(c.proxyProtocolFrom); return err })
	fs.Duration(&b.IdleTimeout, "idle-timeout", "BRIDGE_IDLE_TIMEOUT", 0, "close a connection with no open session after this long").Default("0: never").Check(cli.NonNegative(&b.IdleTimeout))
	fs.List(&b.RecordApps, "record-apps", "BRIDGE_RECORD_APPS", "apps whose terminal sessions are recorded as asciicast v2 files: patterns with * and ?, a leading ! excludes (as OpenSSH's)").Arg("PATTERNS").Default("none").
		Check(func() error { return (&bridge.Config{RecordApps: b.RecordApps, RecordDir: "-"}).Validate() })
	fs.String(&b.RecordDir, "record-dir", "BRIDGE_RECORD_DIR", "", "directory of the session recordings, made with mode 0700").Arg("DIR").Default("recordings in the data directory")
	fs.Bool(&b.RecordInput, "record-input", "BRIDGE_RECORD_INPUT", "record what users type too, passwords at prompts included (--record-apps)")
	fs.Size(&c.uploadMaxFile, "upload-max-file-size", "BRIDGE_UPLOAD_MAX_FILE_SIZE", uploads.DefaultMaxFileSize, "largest file that may be staged").Check(cli.Positive(&c.uploadMaxFile))
	fs.Size(&c.uploadQuota, "upload-quota", "BRIDGE_UPLOAD_QUOTA", uploads.DefaultUserQuota, "pending bytes per user across apps").Check(cli.Positive(&c.uploadQuota))
	fs.Duration(&c.uploadExpiry, "upload-expiry", "BRIDGE_UPLOAD_EXPIRY", uploads.DefaultExpiry, "time after which a pending upload is dropped").Check(cli.Positive(&c.uploadExpiry))
	fs.String(&c.stagingURL, "staging-url", "BRIDGE_STAGING_URL", "", "keep pending uploads in an S3-compatible store shared by several bridges: s3://BUCKET/PREFIX (endpoint, region and credentials as AWS tools take them)").
		Arg("URL").Default("none: the local disk, under the data directory").
		Check(func() error {
			if c.stagingURL == "" {
				return nil
			}
			_, _, err := objstage.ParseURL(c.stagingURL)
			return err
		})
	fs.String(&c.stagingKeyFile, "staging-key-file", "BRIDGE_STAGING_KEY_FILE", "", "the 256-bit key, in base64 (openssl rand -base64 32), that encrypts the files kept in the S3 store; required with --staging-url").Arg("FILE").
		Check(func() error {
			if c.stagingKeyFile != "" && c.stagingURL == "" {
				return errors.New("set, but --staging-url is not: the staging area would be this bridge's own disk; give both, or neither")
			}
			return nil
		})
	fs.Size(&c.stagingSpoolSize, "staging-spool-size", "BRIDGE_STAGING_SPOOL_SIZE", objstage.DefaultSpoolSize, "local disk for uploads in flight to the S3 store, all together").Check(cli.Positive(&c.stagingSpoolSize))
	fs.Duration(&c.stagingLease, "staging-lease", "BRIDGE_STAGING_LEASE", objstage.DefaultLease, "a delivery's lease on the files in the S3 store: renewed while it runs, taken over by another bridge this long after its bridge died").Check(cli.Positive(&c.stagingLease))
	defOpen, defTotal := sftp.DefaultHandleLimits()
	fs.Int(&c.sftpMaxOpen, "sftp-max-open-files", "BRIDGE_SFTP_MAX_OPEN_FILES", defOpen, "files and directories one SFTP session may hold open at once").
		Default("an eighth of the process's open file limit (RLIMIT_NOFILE), at most 1024").Check(cli.Positive(&c.sftpMaxOpen))
	fs.Int(&c.sftpMaxTotal, "sftp-max-open-files-total", "BRIDGE_SFTP_MAX_OPEN_FILES_TOTAL", defTotal, "files and directories all SFTP sessions together may hold open at once").
		Default("half the process's open file limit (RLIMIT_NOFILE)").Check(cli.Positive(&c.sftpMaxTotal))
	fs.Int(&c.platformAppQuota, "platform-app-quota", "BRIDGE_PLATFORM_APP_QUOTA", platform.DefaultAppQuota, "embedded platform: one-offs at once per app").Check(cli.Positive(&c.platformAppQuota))
	fs.Int(&c.platformTotalQuota, "platform-total-quota", "BRIDGE_PLATFORM_TOTAL_QUOTA", platform.DefaultTotalQuota, "embedded platform: one-offs at once in all").Check(cli.Positive(&c.platformTotalQuota))
	fs.Duration(&c.platformInactivity, "platform-inactivity-timeout", "BRIDGE_PLATFORM_INACTIVITY_TIMEOUT", platform.DefaultInactivityTimeout, "embedded platform: stop a one-off after this long without data").Check(cli.Positive(&c.platformInactivity))
	fs.Bool(&c.oneOffHostNetwork, "one-off-host-network", "BRIDGE_ONE_OFF_HOST_NETWORK", "embedded platform: give one-offs the host's network instead of one of their own with only a loopback: they then reach other hosts, and everything on this host's loopback too")
	fs.Bool(&c.noPipeMode, "no-pipe-mode", "BRIDGE_NO_PIPE_MODE", "embedded platform: serve every one-off on a terminal, as a PaaS without pipe mode does")
	fs.Level(&c.logLevel, "log-level", "BRIDGE_LOG_LEVEL", slog.LevelInfo, "debug, info, warn or error")
	fs.String(&c.logFormat, "log-format", "BRIDGE_LOG_FORMAT", logFormatText, "log lines as text (key=value) or json (one object a line)").Arg("text|json").Check(checkLogFormat(&c.logFormat))
	fs.String(&c.metricsListen, "metrics-listen", "BRIDGE_METRICS_LISTEN", "", "address to serve Prometheus metrics (/metrics), /healthz and /readyz on").Arg("ADDR").Default("off").
		Check(func() error {
			if c.metricsListen == "" {
				return nil
			}
			return cli.HostPort(&c.metricsListen)()
		})
	fs.String(&c.debugListen, "debug-listen", "BRIDGE_DEBUG_LISTEN", "", "address to serve Go's profiles (/debug/pprof/) and the process's file descriptors, goroutines and heap (/debug/stats) on; it exposes internals: bind it to loopback").Arg("ADDR").Default("off").
		Check(func() error {
			if c.debugListen == "" {
				return nil
			}
			return cli.HostPort(&c.debugListen)()
		})
	fs.String(&c.auditLog, "audit-log", "BRIDGE_AUDIT_LOG", "", "append the audit stream (one JSON object a line) to this file; - for standard error").Arg("FILE").Default("off")
	return fs
}

// writeBridgeUsage is `bridge --help`: subcommands first, then each flag.
func writeBridgeUsage(w io.Writer) {
	var c bridgeFlags
	var token string
	fmt.Fprintln(w, "bridge: an SSH server in front of a PaaS's one-off containers (ssh APP@bridge)")
	fmt.Fprintln(w)
	bridgeFlagSet(&c, &token).WriteUsage(w, cli.Section{
		Title: "Usage",
		Lines: [][2]string{
			{"bridge [flags]", "run the SSH bridge"},
			{"bridge platform [flags]", "run the embedded platform alone (bridge platform --help)"},
			{"bridge healthcheck [flags]", "exit 0 when the bridge at --listen answers with an SSH banner"},
			{"bridge version", "print the version (also bridge --version)"},
			{"bridge check [flags]", "check the configuration and every file it names, start nothing; exit 1 with each problem on stderr (as sshd -t)"},
			{"bridge --help", "this text (also -h; bridge platform --help for the platform's)"},
		},
	}, cli.Section{
		Title: "Environment",
		Lines: [][2]string{
			{apiTokenEnv, "the PaaS API token (no flag takes the token itself)"},
		},
	})
}

func parseBridgeFlags(args []string) (*bridgeFlags, error) {
	c := &bridgeFlags{}
	var apiTokenFlag string
	fs := bridgeFlagSet(c, &apiTokenFlag)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.flags = fs
	if c.version {
		return c, nil
	}
	if apiTokenFlag != "" {
		return nil, &cli.Error{Command: fs.Name(), Msg: fmt.Sprintf("--api-token is refused: a flag shows in process listings; set %s or use --api-token-file", apiTokenEnv)}
	}
	if c.authURL != "" && c.apiURL == "" {
		return nil, fs.Errorf("auth-url", "is used only with a PaaS: set --api-url or ONEOFF_API_URL too, or drop it")
	}
	if c.apiURL != "" && c.apiTokenFile == "" && strings.TrimSpace(os.Getenv(apiTokenEnv)) == "" {
		return nil, fs.Errorf("api-url", "needs an API token: set %s or use --api-token-file", apiTokenEnv)
	}
	if c.bridge.RecordDir == "" {
		c.bridge.RecordDir = filepath.Join(c.dataDir, "recordings")
	}
	// As OpenSSH's ClientAliveInterval, 0 sends no keepalives; the bridge
	// package takes a negative interval for that.
	if c.bridge.ClientAliveInterval == 0 {
		c.bridge.ClientAliveInterval = -1
	}
	if err := c.bridge.Validate(); err != nil {
		return nil, &cli.Error{Command: fs.Name(), Msg: err.Error()}
	}
	return c, nil
}

// setting names the flag called name as the user gave it: the flag, or
// its variable when only the environment set it.
func (c *bridgeFlags) setting(name string) string {
	if f := c.flags.Lookup(name); f != nil {
		return f.Source()
	}
	return "--" + name
}

func defaultDataDir() string {
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "ssh-bridge")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "ssh-bridge")
	}
	return "ssh-bridge-data"
}

// readAPIToken takes the token from the file if one is named, else from
// ONEOFF_API_TOKEN.
func readAPIToken(c *bridgeFlags) (string, error) {
	if c.apiTokenFile == "" {
		return strings.TrimSpace(os.Getenv(apiTokenEnv)), nil
	}
	what := c.setting("api-token-file") + " " + c.apiTokenFile
	raw, err := os.ReadFile(c.apiTokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: no such file: create it with the API token alone on one line, or set %s instead", what, apiTokenEnv)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" || strings.ContainsAny(token, "\r\n\t ") {
		return "", fmt.Errorf("%s: want the API token alone on one line", what)
	}
	return token, nil
}

// platformFlags configures `bridge platform`.
type platformFlags struct {
	listen string
	// listenAddressFile, when set, receives the bound address once listening.
	listenAddressFile string
	logLevel          slog.Level
	log               *slog.Logger
	platform          platform.Config
}

func platformFlagSet(c *platformFlags) *cli.FlagSet {
	fs := cli.NewFlagSet("bridge platform")
	p := &c.platform
	fs.String(&c.listen, "listen", "PLATFORM_LISTEN", "127.0.0.1:8080", "address to serve the one-off API on").Arg("ADDR").Check(cli.HostPort(&c.listen))
	fs.String(&c.listenAddressFile, "listen-address-file", "PLATFORM_LISTEN_ADDRESS_FILE", "", "once listening, write the bound address (host:port, one line) to this file, replaced atomically").Arg("FILE").Default("none")
	fs.List(&p.Apps, "apps", "PLATFORM_APPS", "app names that exist").Arg("NAMES").Default("any valid name")
	fs.Int(&p.AppQuota, "app-quota", "PLATFORM_APP_QUOTA", platform.DefaultAppQuota, "one-offs at once per app").Check(cli.Positive(&p.AppQuota))
	fs.Int(&p.TotalQuota, "total-quota", "PLATFORM_TOTAL_QUOTA", platform.DefaultTotalQuota, "one-offs at once in all").Check(cli.Positive(&p.TotalQuota))
	fs.Size(&p.MaxUploadBytes, "max-upload-size", "PLATFORM_MAX_UPLOAD_SIZE", platform.DefaultMaxUploadBytes, "largest uploaded file").Check(cli.Positive(&p.MaxUploadBytes))
	fs.Duration(&p.AttachTimeout, "attach-timeout", "PLATFORM_ATTACH_TIMEOUT", platform.DefaultAttachTimeout, "drop a one-off not attached within this time").Check(cli.Positive(&p.AttachTimeout))
	fs.Duration(&p.InactivityTimeout, "inactivity-timeout", "PLATFORM_INACTIVITY_TIMEOUT", platform.DefaultInactivityTimeout, "stop an attached one-off after this long without data").Check(cli.Positive(&p.InactivityTimeout))
	fs.String(&p.RunAs, "run-as", "PLATFORM_RUN_AS", platform.DefaultRunAs, "user that runs the one-offs when started as root").Arg("USER").Check(cli.NonEmpty(&p.RunAs))
	fs.String(&p.StateDir, "state-dir", "PLATFORM_STATE_DIR", "", "directory for the one-offs' private /tmp").Arg("DIR").Default("ssh-bridge-platform-UID under $TMPDIR or /tmp")
	fs.String(&p.PublicURL, "public-url", "PLATFORM_PUBLIC_URL", "", "base URL clients reach this server at").Arg("URL").Default("from the listen address")
	fs.Bool(&p.HostNetwork, "one-off-host-network", "PLATFORM_ONE_OFF_HOST_NETWORK", "give one-offs the host's network instead of one of their own with only a loopback: they then reach other hosts, and everything on this host's loopback too")
	fs.Bool(&p.NoPipeMode, "no-pipe-mode", "PLATFORM_NO_PIPE_MODE", "serve every one-off on a terminal and never echo \"tty\": false, as a PaaS without pipe mode does")
	fs.Level(&c.logLevel, "log-level", "PLATFORM_LOG_LEVEL", slog.LevelInfo, "debug, info, warn or error")
	return fs
}

// writePlatformUsage is `bridge platform --help`.
func writePlatformUsage(w io.Writer) {
	var c platformFlags
	fmt.Fprintln(w, "bridge platform: the embedded platform alone, serving the one-off API over HTTP")
	fmt.Fprintln(w)
	platformFlagSet(&c).WriteUsage(w, cli.Section{
		Title: "Usage",
		Lines: [][2]string{{"bridge platform [flags]", "serve the API at --listen until SIGTERM or SIGINT"}},
	}, cli.Section{
		Title: "Environment",
		Lines: [][2]string{{apiTokenEnv, "the API token clients must present (required)"}},
	})
}

func parsePlatformFlags(args []string, stderr io.Writer) (*platformFlags, error) {
	c := &platformFlags{}
	fs := platformFlagSet(c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	p := &c.platform
	p.APIToken = strings.TrimSpace(os.Getenv(apiTokenEnv))
	if p.APIToken == "" {
		return nil, &cli.Error{Command: fs.Name(), Msg: "set " + apiTokenEnv + " to the API token clients must present"}
	}
	c.log = newLogger(c.logLevel, stderr)
	p.Logger = c.log.With("component", "platform")
	if err := p.Validate(); err != nil {
		return nil, &cli.Error{Command: fs.Name(), Msg: err.Error()}
	}
	return c, nil
}

func newLogger(level slog.Level, w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

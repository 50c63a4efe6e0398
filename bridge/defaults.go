package bridge

import "time"

// Defaults for the zero values of Config. The time limits follow OpenSSH's
// sshd_config(5) names: LoginGraceTime, ClientAliveInterval,
// ClientAliveCountMax, MaxSessions.
const (
	DefaultCommand             = "bash"
	DefaultMaxSessions         = 10
	DefaultLoginGraceTime      = 30 * time.Second
	DefaultClientAliveInterval = 15 * time.Second
	DefaultClientAliveCountMax = 3
	DefaultWaitTimeout         = 30 * time.Second
	// DefaultMaxOneOffsPerKey lets one key run most of one connection's
	// DefaultMaxSessions at once (a ControlMaster fan-out, a few terminals),
	// and stays under the embedded platform's one-offs per app (10), so that
	// one key leaves room for others.
	DefaultMaxOneOffsPerKey = 8
)

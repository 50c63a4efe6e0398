package bridge

import "time"

// Defaults for the zero values of Config. The time limits follow OpenSSH's
// sshd_config(5) names: LoginGraceTime, ClientAliveInterval,
// ClientAliveCountMax, MaxSessions.
const (
	DefaultCommand           = "bash"
	DefaultMaxSessions       = 10
	DefaultLoginGraceTime    = 30 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveCountMax = 3
	DefaultWaitTimeout       = 30 * time.Second
)

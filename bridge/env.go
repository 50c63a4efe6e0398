package bridge

// Limits on what one session keeps of the client's env requests (RFC 4254
// section 6.4). A request past any of them is refused (a false reply when
// the client wants one) and nothing of it is kept, so a client cannot make
// the bridge hold, or send to the platform, more than MaxEnvBytes per
// session.
const (
	// MaxEnvVars is how many variables a session keeps. OpenSSH's sshd
	// stops at about the same number: session.c refuses an env request once
	// more than 128 are set. Setting a kept name again replaces it and does
	// not count twice.
	MaxEnvVars = 128
	// MaxEnvNameBytes is the longest variable name taken, in bytes.
	MaxEnvNameBytes = 256
	// MaxEnvValueBytes is the longest value taken, in bytes (32 KiB: more
	// than any locale or LS_COLORS-like variable needs).
	MaxEnvValueBytes = 32 << 10
	// MaxEnvBytes bounds the names and values a session keeps, all
	// together, in bytes (64 KiB).
	MaxEnvBytes = 64 << 10
)

// envRefusal says why a session does not take the variable name=value
// ("" when it does), given the variables it keeps so far.
func envRefusal(kept map[string]string, name, value string) string {
	switch {
	case len(name) > MaxEnvNameBytes:
		return "name too long"
	case len(value) > MaxEnvValueBytes:
		return "value too long"
	}
	total := 0
	for k, v := range kept {
		if k != name {
			total += len(k) + len(v)
		}
	}
	_, replaces := kept[name]
	switch {
	case !replaces && len(kept) >= MaxEnvVars:
		return "too many variables"
	case total+len(name)+len(value) > MaxEnvBytes:
		return "too many bytes in all"
	}
	return ""
}

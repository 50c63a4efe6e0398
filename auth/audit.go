package auth

import (
	"net"

	gossh "golang.org/x/crypto/ssh"
)

// audit logs one decision. It names the SSH user name as the client sent
// it, the app decided on (appname.ParseUser), the key by fingerprint or
// certificate identity and the line that matched; never option values,
// which may hold secrets (environment=).
func (a *Authority) audit(remote net.Addr, user, app string, key gossh.PublicKey, d decision) {
	attrs := []any{"remote", addrString(remote), "user", user, "app", app}
	if cert, ok := key.(*gossh.Certificate); ok {
		attrs = append(attrs, "cert", certIdentity(cert), "fingerprint", gossh.FingerprintSHA256(cert.Key))
	} else {
		attrs = append(attrs, "fingerprint", gossh.FingerprintSHA256(key))
	}
	attrs = append(attrs, "key_type", key.Type())
	switch {
	case d.grant == nil:
		a.log.Info("auth refused", append(attrs, "decision", "refuse", "reason", d.reason)...)
	case !d.grant.Allowed:
		a.log.Info("auth accepted key, app denied", append(attrs, "decision", "deny-app", "reason", d.reason, "source", d.grant.Source)...)
	default:
		a.log.Info("auth accepted key", append(attrs, "decision", "accept", "source", d.grant.Source)...)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

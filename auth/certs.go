package auth

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Certificate critical options and extensions the bridge understands.
const (
	optForceCommand  = "force-command"
	optSourceAddress = "source-address"
	extPTY           = "permit-pty"
	extPortFwd       = "permit-port-forwarding"
	extAgentFwd      = "permit-agent-forwarding"
	extX11Fwd        = "permit-X11-forwarding"
)

// certIdentity is the audit identity of a certificate.
func certIdentity(cert *gossh.Certificate) string {
	id := cert.KeyId
	if id == "" || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) {
		id = strconv.Quote(id)
	}
	return fmt.Sprintf("id=%s serial=%d ca=%s", id, cert.Serial, gossh.FingerprintSHA256(cert.SignatureKey))
}

// decideCert checks a user certificate: trusted CA file first, then
// cert-authority lines, as sshd checks TrustedUserCAKeys then
// authorized_keys. Least privilege: the apps a certificate opens are those
// its principals name, unless the cert-authority line has apps=, which
// then alone names them. A line's principals= only narrows which
// certificates the line accepts (one of its names must be a principal of
// the certificate); it never widens the apps.
func (ks *keySet) decideCert(app string, cert *gossh.Certificate, addr netip.Addr, now time.Time) decision {
	ca := cert.SignatureKey.Marshal()
	caFile, trusted := ks.trustedCAs[string(ca)]
	lines := ks.caLines[string(ca)]
	if !trusted && len(lines) == 0 {
		return decision{reason: "certificate signed by an unknown CA"}
	}
	if cert.CertType != gossh.UserCert {
		return decision{reason: "not a user certificate"}
	}
	if len(cert.ValidPrincipals) == 0 {
		return decision{reason: "certificate has no principals"}
	}
	checker := gossh.CertChecker{
		SupportedCriticalOptions: []string{optForceCommand, optSourceAddress},
		Clock:                    func() time.Time { return now },
	}
	// The principal check against the app comes below, so that a valid
	// certificate for another app gets a plain answer: any listed
	// principal passes here.
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return decision{reason: "certificate: " + strings.TrimPrefix(err.Error(), "ssh: ")}
	}
	if sa, ok := cert.CriticalOptions[optSourceAddress]; ok {
		l, err := parseAddrList(sa, true)
		if err != nil {
			return decision{reason: "certificate: bad source-address: " + err.Error()}
		}
		if !l.allows(addr) {
			return decision{reason: "certificate: source address not allowed by source-address"}
		}
	}
	identity, fp := certIdentity(cert), gossh.FingerprintSHA256(cert.Key)
	hasApp := slices.Contains(cert.ValidPrincipals, app)
	var denied string
	if trusted {
		if hasApp {
			return certGrant(&keyOptions{}, cert, app, identity, fp, caFile)
		}
		denied = caFile
	}
	reason := ""
	for _, kl := range lines {
		if why := kl.opts.refusal(addr, now); why != "" {
			reason = why + " (" + kl.source + ")"
			continue
		}
		if len(kl.opts.principals) > 0 && !slices.ContainsFunc(cert.ValidPrincipals, func(p string) bool {
			return slices.Contains(kl.opts.principals, p)
		}) {
			reason = "no certificate principal allowed by principals= (" + kl.source + ")"
			continue
		}
		if !certLineAllows(&kl.opts, hasApp, app) {
			if denied == "" {
				denied = kl.source
			}
			continue
		}
		return certGrant(&kl.opts, cert, app, identity, fp, kl.source)
	}
	if denied != "" {
		return decision{grant: deniedGrant(app, identity, fp, denied), reason: "app not among the certificate's allowed apps (" + denied + ")"}
	}
	return decision{reason: reason}
}

// certLineAllows says whether a cert-authority line that accepted a
// certificate lets it open app: apps= alone decides when the line has it;
// otherwise the app must be one of the certificate's principals (hasApp).
func certLineAllows(o *keyOptions, hasApp bool, app string) bool {
	if o.apps != nil {
		return o.apps.allows(app)
	}
	return hasApp
}

// certGrant merges line options with the certificate's: restrictions add
// up; two different forced commands refuse the key, as in sshd.
func certGrant(o *keyOptions, cert *gossh.Certificate, app, identity, fp, source string) decision {
	g := o.grant(app, identity, fp, source)
	if fc, ok := cert.CriticalOptions[optForceCommand]; ok {
		if o.hasCommand && o.command != fc {
			return decision{reason: "certificate force-command and command= differ (" + source + ")"}
		}
		g.ForceCommand = fc
	}
	_, pty := cert.Extensions[extPTY]
	_, pf := cert.Extensions[extPortFwd]
	_, af := cert.Extensions[extAgentFwd]
	_, xf := cert.Extensions[extX11Fwd]
	g.NoPTY = g.NoPTY || !pty
	g.NoPortForwarding = g.NoPortForwarding || !pf
	g.NoAgentForwarding = g.NoAgentForwarding || !af
	g.NoX11Forwarding = g.NoX11Forwarding || !xf
	return decision{grant: g}
}

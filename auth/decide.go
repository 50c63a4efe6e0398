package auth

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"sshbridge/appname"
)

// decision is the outcome of one key for one app.
type decision struct {
	grant  *Grant // nil: refused
	reason string // why refused or denied, for the log only
}

// decideApp is decide, with the app name checked too: a name that is no
// app name (appname.Valid: no glob characters, slash or control character)
// is never allowed, so that it can neither play tricks with apps= patterns
// nor reach the platform's URLs.
func (ks *keySet) decideApp(app string, key gossh.PublicKey, addr netip.Addr, now time.Time) decision {
	d := ks.decide(app, key, addr, now)
	if d.grant != nil && d.grant.Allowed && !appname.Valid(app) {
		g := d.grant
		return decision{grant: deniedGrant(app, g.Identity, g.Fingerprint, g.Source), reason: "not a valid app name"}
	}
	return d
}

// decide is the policy: the first line (or trusted CA) that authorizes the
// key from this address now and allows the app wins; failing that, a line
// that authorizes the key but not the app gives Allowed=false; otherwise
// the key is refused.
func (ks *keySet) decide(app string, key gossh.PublicKey, addr netip.Addr, now time.Time) decision {
	if ks.isRevoked(key) {
		return decision{reason: "key revoked"}
	}
	if cert, ok := key.(*gossh.Certificate); ok {
		return ks.decideCert(app, cert, addr, now)
	}
	fp := gossh.FingerprintSHA256(key)
	lines := ks.keys[string(key.Marshal())]
	if len(lines) == 0 {
		return decision{reason: "unknown key"}
	}
	var denied *keyLine
	reason := ""
	for _, kl := range lines {
		if why := kl.opts.refusal(addr, now); why != "" {
			reason = why + " (" + kl.source + ")"
			continue
		}
		if kl.opts.apps != nil && !kl.opts.apps.allows(app) {
			if denied == nil {
				denied = kl
			}
			continue
		}
		g := kl.opts.grant(app, fp, fp, kl.source)
		return decision{grant: g}
	}
	if denied != nil {
		return decision{grant: deniedGrant(app, fp, fp, denied.source), reason: "app not allowed by apps= (" + denied.source + ")"}
	}
	return decision{reason: reason}
}

// refusal says why this line does not authorize a key from addr at now.
func (o *keyOptions) refusal(addr netip.Addr, now time.Time) string {
	if o.from != nil && !o.from.allows(addr) {
		return "source address not allowed by from="
	}
	if !o.expiry.IsZero() && !now.Before(o.expiry) {
		return "key expired (expiry-time)"
	}
	return ""
}

// grant makes the Grant of an allowed app from the line's options.
func (o *keyOptions) grant(app, identity, fp, source string) *Grant {
	g := &Grant{
		Identity:          identity,
		Fingerprint:       fp,
		App:               app,
		Allowed:           true,
		ForceCommand:      o.command,
		NoPTY:             o.noPTY,
		NoPortForwarding:  o.noPortFwd,
		NoAgentForwarding: o.noAgentFwd,
		NoX11Forwarding:   o.noX11Fwd,
		PermitOpen:        slices.Clone(o.permitOpen),
		PermitListen:      slices.Clone(o.permitListen),
		SessionMode:       o.sessionMode,
		Source:            source,
		noTouch:           o.noTouch,
	}
	if len(o.env) > 0 {
		g.Env = make(map[string]string, len(o.env))
		for _, e := range o.env {
			g.Env[e.name] = e.value
		}
	}
	return g
}

func deniedGrant(app, identity, fp, source string) *Grant {
	return &Grant{Identity: identity, Fingerprint: fp, App: app, Source: source}
}

// copyGrant keeps handlers from sharing maps between connections.
func copyGrant(g *Grant) *Grant {
	c := *g
	c.Env = maps.Clone(g.Env)
	c.PermitOpen = slices.Clone(g.PermitOpen)
	c.PermitListen = slices.Clone(g.PermitListen)
	return &c
}

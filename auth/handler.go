package auth

import (
	"errors"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/appname"
)

// PublicKeyHandler is the gliderlabs ssh.Server.PublicKeyHandler. It
// accepts a key that may use some app; the Grant of the key, for the app
// named by the user name (appname.ParseUser: "demo-app+conn" is app
// "demo-app", asking for connection mode; apps=, certificate principals
// and the app name check see "demo-app"), is stored in ctx for GrantFrom, replaced at every
// accepted key and cleared at every refused one. x/crypto (>= 0.31) calls
// the handler last with the key whose signature it verified, so GrantFrom
// gives the rights of the key the client proved it holds, not of a key it
// merely offered.
func (a *Authority) PublicKeyHandler(ctx ssh.Context, key ssh.PublicKey) bool {
	a.maybeReload()
	remote := ctx.RemoteAddr()
	user := ctx.User()
	app, byName := appname.ParseUser(user)
	addr, _ := addrOf(remote)
	d := a.keys.Load().decideApp(app, key, addr, a.now())
	a.audit(remote, user, app, key, d)
	ctx.SetValue(reasonKey{}, d.reason)
	if d.grant == nil {
		ctx.SetValue(grantKey{}, (*Grant)(nil))
		return false
	}
	g := copyGrant(d.grant)
	g.ConnectionModeByName = byName
	g.keyBlob = string(key.Marshal())
	ctx.SetValue(grantKey{}, g)
	setNoTouch(ctx, g.noTouch)
	return true
}

// setNoTouch passes no-touch-required to x/crypto, which reads it from the
// connection's permissions when it verifies a FIDO key's signature. The
// permissions are shared by every key of the connection; the last call is
// for the verified key, so its value is the one that counts.
func setNoTouch(ctx ssh.Context, on bool) {
	p := ctx.Permissions()
	if p == nil || p.Permissions == nil {
		return
	}
	const ext = "no-touch-required"
	if on {
		if p.Extensions == nil {
			p.Extensions = map[string]string{}
		}
		p.Extensions[ext] = ""
	} else {
		delete(p.Extensions, ext)
	}
}

// VerifiedPublicKeyCallback returns, for the connection of ctx, a value for
// x/crypto's ServerConfig.VerifiedPublicKeyCallback (set it in the
// gliderlabs ServerConfigCallback). x/crypto calls it only once it verified
// the client's signature; it refuses authentication unless the grant in ctx
// is the one of that key, so the rights never come from a key that was
// merely offered even if the call order guarantee were ever lost.
func (a *Authority) VerifiedPublicKeyCallback(ctx ssh.Context) func(gossh.ConnMetadata, gossh.PublicKey, *gossh.Permissions, string) (*gossh.Permissions, error) {
	return func(_ gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions, _ string) (*gossh.Permissions, error) {
		if g, ok := GrantFrom(ctx); ok && g.keyBlob == string(key.Marshal()) {
			// The one line that says who actually logged in; "auth
			// accepted key" lines may be for keys only offered.
			a.log.Info("auth verified", "remote", addrString(ctx.RemoteAddr()), "user", ctx.User(), "app", g.App,
				"identity", g.Identity, "allowed", g.Allowed, "source", g.Source)
			return perms, nil
		}
		ctx.SetValue(grantKey{}, (*Grant)(nil))
		a.log.Error("auth refused: the verified key is not the key granted", "remote", addrString(ctx.RemoteAddr()),
			"user", ctx.User(), "fingerprint", gossh.FingerprintSHA256(key), "decision", "refuse")
		return nil, errors.New("auth: verified key has no grant")
	}
}

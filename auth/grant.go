package auth

import "context"

// Grant is what an authenticated key may do in one connection.
type Grant struct {
	// Identity is the audit identity: "SHA256:…" for a key, or
	// "id=<keyid> serial=N ca=SHA256:…" for a certificate.
	Identity string
	// Fingerprint is the SHA256 fingerprint of the key (for a certificate,
	// of its public key, as OpenSSH prints it).
	Fingerprint string
	// App is the app the SSH user name names (appname.ParseUser): the user
	// name itself, or the part before "+conn".
	App string
	// ConnectionModeByName is true when the user name asked for
	// connection mode ("demo-app+conn").
	ConnectionModeByName bool
	// SessionMode is the key's session-mode option: "" when the key says
	// nothing, else SessionModeSession or SessionModeConnection. restrict
	// does not change it; certificates from the trusted CA keys file have
	// none.
	SessionMode string
	// Allowed is false for a valid key that may not use App: the session
	// then prints a plain refusal and opens nothing.
	Allowed bool
	// ForceCommand replaces the client's command when not "" (command=
	// or the certificate's force-command); the client's command goes into
	// SSH_ORIGINAL_COMMAND.
	ForceCommand string
	// Env holds the environment="NAME=value" options.
	Env map[string]string
	// Restrictions from the key options and certificate extensions.
	NoPTY, NoPortForwarding, NoAgentForwarding, NoX11Forwarding bool
	// PermitOpen lists the permitopen="host:port" options as written
	// (checked at load as sshd checks them): the targets beyond the
	// container's loopback that forwarding may reach (CheckOpen). Empty:
	// the loopback only.
	PermitOpen []string
	// PermitListen lists the permitlisten="[host:]port" options as
	// written (checked at load): where a remote forwarding may listen
	// (CheckListen). Empty: any port, on the loopback.
	PermitListen []string
	// Source says what authorized the key: "file:line", or the trusted
	// user CA keys file for a certificate.
	Source string

	keyBlob string // the key this grant is for, checked by VerifiedPublicKeyCallback
	noTouch bool   // no-touch-required: a FIDO key may sign without a touch
}

// grantKey is the context key of the Grant; unexported so only this package
// sets it.
type grantKey struct{}

// GrantFrom returns the Grant of the key that authenticated the connection
// of ctx (an ssh.Context or a context derived from it).
func GrantFrom(ctx context.Context) (*Grant, bool) {
	g, ok := ctx.Value(grantKey{}).(*Grant)
	if !ok || g == nil {
		return nil, false
	}
	return g, true
}

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
	// App is the SSH user name.
	App string
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
	// PermitOpen lists permitopen="host:port" options; the bridge refuses
	// all forwarding anyway.
	PermitOpen []string
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

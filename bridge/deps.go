package bridge

import (
	"context"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/oneoff"
)

// Platform is the part of the one-off container API the bridge uses.
type Platform interface {
	// Start asks for a one-off container and returns it once it is ready to
	// take uploads and an attach.
	Start(ctx context.Context, req oneoff.RunRequest) (*oneoff.OneOff, error)
}

var _ Platform = (*oneoff.Client)(nil)

// Authenticator decides who may connect; the grant it leaves in the
// connection's context decides what the session may do.
type Authenticator interface {
	PublicKeyHandler(ctx ssh.Context, key ssh.PublicKey) bool
	// VerifiedPublicKeyCallback runs once the client proved it holds the
	// key: the check that the grant in force is that key's.
	VerifiedPublicKeyCallback(ctx ssh.Context) func(gossh.ConnMetadata, gossh.PublicKey, *gossh.Permissions, string) (*gossh.Permissions, error)
}

// Package bridge is the SSH server of the bridge: one SSH session channel
// becomes one one-off container of the app named by the SSH user.
//
// It owns the SSH side only: channel and request handling, the pty and
// window size, environment, signals, exit codes and the order of teardown.
// The one-off container API, access control and the upload staging area are
// reached through the small interfaces declared in deps.go.
package bridge

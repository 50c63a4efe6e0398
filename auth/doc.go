// Package auth decides who may connect to the bridge and which app they may
// open: OpenSSH authorized_keys files (with OpenSSH's options plus apps="..."),
// OpenSSH user certificates (TrustedUserCAKeys and cert-authority lines),
// revocation lists (KRL or plain keys), a per-address failure throttle and an
// audit log line for every decision. Host keys are in hostkey.go.
//
// The SSH user name is the app. An Authority is safe for concurrent use; its
// key files are reloaded when they change, keeping the last good set when a
// new version does not parse.
package auth

// Package staging joins the upload staging area (package uploads) to the
// SSH side (package bridge): it builds the bridge's subsystem map (SFTP,
// package sftp), its exec interceptors (legacy scp's server side, package
// scp; the probes of SFTP tools, package probe) and its deliverer, all over
// one uploads.Backend (the local uploads.Store, or objstage.Store on an
// S3-compatible store). SFTP and scp fill the store; the next one-off's start
// empties it.
package staging

package main

import (
	"log/slog"
	"path/filepath"

	"sshbridge/sftp"
	"sshbridge/staging"
	"sshbridge/uploads"
)

// newStaging opens the upload staging area under the data directory with
// the flags' limits.
func newStaging(cfg *bridgeFlags, log *slog.Logger) (*staging.Area, error) {
	log = log.With("component", "uploads")
	store, err := openStore(cfg, log)
	if err != nil {
		return nil, err
	}
	return staging.New(store, sftp.NewHandles(cfg.sftpMaxOpen, cfg.sftpMaxTotal), log), nil
}

// openStore opens the staging area's store: under the data directory, or
// the S3-compatible store of --staging-url.
func openStore(cfg *bridgeFlags, log *slog.Logger) (uploads.Backend, error) {
	if cfg.stagingURL != "" {
		return openObjectStore(cfg, log)
	}
	store, err := uploads.Open(filepath.Join(cfg.dataDir, "uploads"), uploads.Limits{
		MaxFileSize: cfg.uploadMaxFile,
		UserQuota:   cfg.uploadQuota,
		Expiry:      cfg.uploadExpiry,
	}, log)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return store, nil
}

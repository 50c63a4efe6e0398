package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"sshbridge/objstage"
	"sshbridge/uploads"
)

// openObjectStore opens the staging area in the S3-compatible store of
// --staging-url, with its key file and the flags' limits; its spool is
// under the data directory. A bad key file, a missing bucket or refused
// credentials stop the start with one line.
func openObjectStore(cfg *bridgeFlags, log *slog.Logger) (uploads.Backend, error) {
	key, err := objstage.ReadKeyFile(cfg.stagingKeyFile)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := objstage.Open(ctx, objectStoreConfig(cfg, key), log)
	if err != nil {
		return nil, err
	}
	log.Info("staging area in an S3-compatible store", "url", cfg.stagingURL,
		"spool", filepath.Join(cfg.dataDir, "spool"), "lease", cfg.stagingLease)
	return store, nil
}

func objectStoreConfig(cfg *bridgeFlags, key []byte) objstage.Config {
	return objstage.Config{
		URL:       cfg.stagingURL,
		Key:       key,
		SpoolDir:  filepath.Join(cfg.dataDir, "spool"),
		SpoolSize: cfg.stagingSpoolSize,
		Lease:     cfg.stagingLease,
		Limits: uploads.Limits{
			MaxFileSize: cfg.uploadMaxFile,
			UserQuota:   cfg.uploadQuota,
			Expiry:      cfg.uploadExpiry,
		},
	}
}

package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"sshbridge/bridge"
	"sshbridge/probe"
	"sshbridge/scp"
	"sshbridge/sftp"
	"sshbridge/uploads"
)

// stagingArea joins the upload staging area to the SSH side: SFTP and
// legacy scp fill it, the next one-off's start empties it.
type stagingArea struct {
	store   *uploads.Store
	handles *sftp.Handles // shared by every SFTP session
	log     *slog.Logger
}

var _ bridge.Uploads = (*stagingArea)(nil)

func newStaging(cfg *bridgeFlags, log *slog.Logger) (*stagingArea, error) {
	store, err := uploads.Open(filepath.Join(cfg.dataDir, "uploads"), uploads.Limits{
		MaxFileSize: cfg.uploadMaxFile,
		UserQuota:   cfg.uploadQuota,
		Expiry:      cfg.uploadExpiry,
	}, log.With("component", "uploads"))
	if err != nil {
		return nil, err
	}
	return &stagingArea{store: store, handles: sftp.NewHandles(cfg.sftpMaxOpen, cfg.sftpMaxTotal),
		log: log.With("component", "uploads")}, nil
}

func (s *stagingArea) Close() error { return s.store.Close() }

func (s *stagingArea) ServeSFTP(ctx context.Context, user, app string, ch io.ReadWriteCloser, stderr io.Writer) error {
	return sftp.Serve(ctx, ch, s.store.Scope(user, app), sftp.Options{Logger: s.log, Stderr: stderr, Handles: s.handles})
}

// Intercept answers legacy scp's server side and the probes of SFTP tools
// (package probe) from the staging area; every other command goes to a
// one-off.
func (s *stagingArea) Intercept(command string) bridge.ExecHandler {
	if scp.IsCommand(command) {
		return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) int {
			return scp.Run(ctx, rw, stderr, s.store.Scope(user, app), command, s.log)
		}
	}
	if p, ok := probe.Parse(command); ok {
		return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) int {
			code, err := p.Run(ctx, s.store.Scope(user, app), rw, rw, stderr)
			log := s.log.With("app", app, "probe", p.String(), "exit_code", code)
			if err != nil {
				log.Warn("probe answered by the bridge, with an error", "err", err)
			} else {
				log.Info("probe answered by the bridge")
			}
			return code
		}
	}
	return nil
}

func (s *stagingArea) Deliver(ctx context.Context, user, app string,
	send func(ctx context.Context, name string, size int64, r io.Reader) error,
	progress func(name string, sent, size int64, accepted bool)) (bridge.Delivery, error) {
	d, err := s.store.Scope(user, app).Deliver(ctx, send, progress)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return d, nil
}

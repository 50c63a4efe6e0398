package staging

import (
	"context"
	"io"
	"log/slog"

	"sshbridge/bridge"
	"sshbridge/probe"
	"sshbridge/scp"
	"sshbridge/sftp"
	"sshbridge/uploads"
)

// Area is the staging area as the bridge reaches it: Subsystems,
// Interceptors and the Deliverer go into bridge.Deps.
type Area struct {
	store   *uploads.Store
	handles *sftp.Handles // shared by every SFTP session
	log     *slog.Logger
}

var _ bridge.Deliverer = (*Area)(nil)

// New joins store to the SSH side. handles bounds the files open by every
// SFTP session together (sftp.NewHandles). log gets one line per probe
// answered and the SFTP and scp servers' lines; nil discards them.
func New(store *uploads.Store, handles *sftp.Handles, log *slog.Logger) *Area {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Area{store: store, handles: handles, log: log}
}

// Store is the staging area's store, for its counts and checks.
func (a *Area) Store() *uploads.Store { return a.store }

// Close closes the store.
func (a *Area) Close() error { return a.store.Close() }

// Subsystems maps "sftp" to the SFTP server over the staging area of the
// session's (user, app); no other subsystem is served.
func (a *Area) Subsystems() map[string]bridge.SubsystemHandler {
	return map[string]bridge.SubsystemHandler{"sftp": a.serveSFTP}
}

// Interceptors answers, in this order, legacy scp's server side (scp -t,
// scp -f: scp.IsCommand), so that the image needs no scp, and the probes
// SFTP tools send about the files they uploaded (probe.Parse), which a
// one-off would answer only after taking the files.
func (a *Area) Interceptors() []bridge.Interceptor {
	return []bridge.Interceptor{bridge.InterceptorFunc(a.scp), bridge.InterceptorFunc(a.probe)}
}

func (a *Area) serveSFTP(ctx context.Context, user, app string, ch io.ReadWriteCloser, stderr io.Writer) error {
	return sftp.Serve(ctx, ch, a.store.Scope(user, app), sftp.Options{Logger: a.log, Stderr: stderr, Handles: a.handles})
}

func (a *Area) scp(command string) bridge.ExecHandler {
	if !scp.IsCommand(command) {
		return nil
	}
	return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) (int, error) {
		return scp.Run(ctx, rw, stderr, a.store.Scope(user, app), command, a.log), nil
	}
}

func (a *Area) probe(command string) bridge.ExecHandler {
	p, ok := probe.Parse(command)
	if !ok {
		return nil
	}
	return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) (int, error) {
		code, err := p.Run(ctx, a.store.Scope(user, app), rw, rw, stderr)
		log := a.log.With("app", app, "probe", p.String(), "exit_code", code)
		if err != nil {
			log.Warn("probe answered by the bridge, with an error", "err", err)
		} else {
			log.Info("probe answered by the bridge")
		}
		return code, nil
	}
}

// Deliver is bridge.Deliverer's, over the pending files of (user, app)
// (uploads.Scope.Deliver).
func (a *Area) Deliver(ctx context.Context, user, app string,
	send func(ctx context.Context, name string, size int64, r io.Reader) error,
	progress func(name string, sent, size int64, accepted bool)) (bridge.Delivery, error) {
	d, err := a.store.Scope(user, app).Deliver(ctx, send, progress)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return d, nil
}

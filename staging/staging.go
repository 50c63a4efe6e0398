package staging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"sshbridge/bridge"
	"sshbridge/probe"
	"sshbridge/scp"
	"sshbridge/sftp"
	"sshbridge/uploads"
)

// Area is the staging area as the bridge reaches it: Subsystems,
// Interceptors and the Deliverer go into bridge.Deps. Its store is an
// uploads.Backend: the local uploads.Store, or objstage's S3 store.
//
// The area is held by one process at a time (the store's lock). A bridge
// handing over to a new process of itself passes it on (Handover): from
// then on it starts no new use of it, and closes the store once its uses
// under way (SFTP and scp sessions, probes, deliveries until their commit)
// have ended; the new process's area (Pending) waits for the store
// meanwhile, and so do the uses it is asked for.
type Area struct {
	ready   chan struct{} // closed once store or openErr is set
	store   uploads.Backend
	openErr error
	handles *sftp.Handles // shared by every SFTP session
	log     *slog.Logger

	mu       sync.Mutex
	uses     int
	handed   bool          // Handover began: no new use
	idle     chan struct{} // closed when handed and uses is 0
	closeErr error
	closed   sync.Once
	observe  func(uploads.Event) // Observe's, given to the store once open
}

// ErrHandedOver is a use's error once the area has passed to the bridge's
// new process: the user reconnects, and is served by that process.
var ErrHandedOver = errors.New("the bridge is restarting and its new process holds the upload area: reconnect")

var _ bridge.Deliverer = (*Area)(nil)

// New joins store to the SSH side. handles bounds the files open by every
// SFTP session together (sftp.NewHandles). log gets one line per probe
// answered and the SFTP and scp servers' lines; nil discards them.
func New(store uploads.Backend, handles *sftp.Handles, log *slog.Logger) *Area {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := newArea(handles, log)
	a.store = store
	close(a.ready)
	return a
}

// Pending returns an area whose store is not open yet, and the function
// that gives it the store once open (or the error that it could not be):
// meanwhile each use waits for it, up to the end of its context.
func Pending(handles *sftp.Handles, log *slog.Logger) (*Area, func(uploads.Backend, error)) {
	a := newArea(handles, log)
	var once sync.Once
	return a, func(store uploads.Backend, err error) {
		once.Do(func() {
			a.mu.Lock()
			a.store, a.openErr = store, err
			if store != nil && a.observe != nil {
				store.Observe(a.observe)
			}
			a.mu.Unlock()
			close(a.ready)
		})
	}
}

// Store is the area's store once open; nil before (a new process of a
// handover waits for the old one to let it go) or when it could not be
// opened.
func (a *Area) Store() uploads.Backend {
	select {
	case <-a.ready:
		return a.store
	default:
		return nil
	}
}

// Observe has the store's events (uploads.Store.Observe) reach fn, from
// now or from when the store opens.
func (a *Area) Observe(fn func(uploads.Event)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observe = fn
	if a.store != nil {
		a.store.Observe(fn)
	}
}

func newArea(handles *sftp.Handles, log *slog.Logger) *Area {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Area{ready: make(chan struct{}), handles: handles, log: log, idle: make(chan struct{})}
}

// Close closes the store, if it was opened.
func (a *Area) Close() error {
	select {
	case <-a.ready:
	default:
		return nil
	}
	a.closed.Do(func() {
		if a.store != nil {
			a.closeErr = a.store.Close()
		}
	})
	return a.closeErr
}

// Handover passes the area on to the bridge's new process: no new use
// starts (ErrHandedOver), and once the uses under way have ended, or ctx
// is done, the store is closed, which lets the new process open it.
func (a *Area) Handover(ctx context.Context) error {
	a.mu.Lock()
	if !a.handed {
		a.handed = true
		if a.uses == 0 {
			close(a.idle)
		}
	}
	a.mu.Unlock()
	select {
	case <-a.idle:
	case <-ctx.Done():
	}
	return a.Close()
}

// acquire starts a use of the store, waiting for it to be open; done
// ends the use.
func (a *Area) acquire(ctx context.Context) (uploads.Backend, error) {
	select {
	case <-a.ready:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if a.openErr != nil {
		return nil, a.openErr
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handed {
		return nil, ErrHandedOver
	}
	a.uses++
	return a.store, nil
}

func (a *Area) done() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.uses--
	if a.handed && a.uses == 0 {
		close(a.idle)
	}
}

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
	store, err := a.acquire(ctx)
	if err != nil {
		return err
	}
	defer a.done()
	return sftp.Serve(ctx, ch, store.Files(user, app), sftp.Options{Logger: a.log, Stderr: stderr, Handles: a.handles})
}

func (a *Area) scp(command string) bridge.ExecHandler {
	if !scp.IsCommand(command) {
		return nil
	}
	return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) (int, error) {
		store, err := a.acquire(ctx)
		if err != nil {
			return 0, err
		}
		defer a.done()
		return scp.Run(ctx, rw, stderr, store.Files(user, app), command, a.log), nil
	}
}

func (a *Area) probe(command string) bridge.ExecHandler {
	p, ok := probe.Parse(command)
	if !ok {
		return nil
	}
	return func(ctx context.Context, user, app string, rw io.ReadWriter, stderr io.Writer) (int, error) {
		store, err := a.acquire(ctx)
		if err != nil {
			return 0, err
		}
		defer a.done()
		code, err := p.Run(ctx, store.Files(user, app), rw, rw, stderr)
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
// (uploads.Files.DeliverFiles).
func (a *Area) Deliver(ctx context.Context, user, app string,
	send func(ctx context.Context, name string, size int64, r io.Reader) error,
	progress func(name string, sent, size int64, accepted bool)) (bridge.Delivery, error) {
	store, err := a.acquire(ctx)
	if errors.Is(err, ErrHandedOver) {
		// A session of the old process whose one-off became ready after
		// the handover: it runs, and what is pending stays so for the next
		// session, which the new process serves.
		a.log.Warn("session starts without the pending uploads: the staging area was handed over to the new process", "app", app)
		return noDelivery{}, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := store.Files(user, app).DeliverFiles(ctx, send, progress)
	if err != nil {
		a.done()
		if errors.Is(err, uploads.ErrStoreUnavailable) {
			err = fmt.Errorf("%w: %w", bridge.ErrStagingUnavailable, err)
		}
		return nil, err // not a typed nil in the interface
	}
	return &delivery{Handoff: d, a: a}, nil
}

// noDelivery sent nothing.
type noDelivery struct{}

func (noDelivery) Files() []string { return nil }
func (noDelivery) Commit() error   { return nil }
func (noDelivery) Release()        {}

// delivery is a use of the area from the delivery to its Commit or
// Release.
type delivery struct {
	uploads.Handoff
	a    *Area
	once sync.Once
}

func (d *delivery) Commit() error {
	defer d.once.Do(d.a.done)
	return d.Handoff.Commit()
}

func (d *delivery) Release() {
	defer d.once.Do(d.a.done)
	d.Handoff.Release()
}

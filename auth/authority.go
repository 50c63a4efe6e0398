package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Authority answers who may use which app. Create it with New.
type Authority struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	loc  *time.Location
	keys atomic.Pointer[keySet]

	reloadMu  sync.Mutex // one reload at a time
	stamps    []fileStamp
	lastCheck atomic.Int64 // monotonic nanoseconds of the last change check
	started   time.Time
}

// New loads every configured file. A line it cannot parse is an error
// naming the file and line; having neither a key nor a CA is an error
// wrapping ErrNoKeys.
func New(cfg Config) (*Authority, error) {
	a := &Authority{cfg: cfg, log: cfg.Logger, now: cfg.Now, loc: cfg.Location, started: time.Now()}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.loc == nil {
		a.loc = time.Local
	}
	if a.cfg.ReloadInterval == 0 {
		a.cfg.ReloadInterval = time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	a.stamps = stampFiles(a.cfg.watchedFiles())
	ks, warnings, err := loadKeySet(&a.cfg, a.loc)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if ks.count == 0 {
		return nil, fmt.Errorf("auth: %w in %v", ErrNoKeys, a.cfg.watchedFiles())
	}
	for _, w := range warnings {
		a.log.Warn("authorized keys", "warning", w)
	}
	a.keys.Store(ks)
	a.log.Info("authorized keys loaded", "keys", ks.count, "files", a.cfg.watchedFiles())
	return a, nil
}

// Reload reads the files again now. On error the previous set stays in
// force and the error (naming file and line) is logged and returned.
func (a *Authority) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	a.stamps = stampFiles(a.cfg.watchedFiles())
	return a.reloadLocked()
}

func (a *Authority) reloadLocked() error {
	ks, warnings, err := loadKeySet(&a.cfg, a.loc)
	if err != nil {
		a.log.Error("authorized keys reload failed, keeping the previous keys", "err", err)
		return fmt.Errorf("auth reload: %w", err)
	}
	for _, w := range warnings {
		a.log.Warn("authorized keys", "warning", w)
	}
	a.keys.Store(ks)
	a.log.Info("authorized keys reloaded", "keys", ks.count)
	return nil
}

// maybeReload reloads when a file changed since the last check, at most
// once per ReloadInterval. A reload already under way is not waited for.
func (a *Authority) maybeReload() {
	if a.cfg.ReloadInterval < 0 {
		return
	}
	now := int64(time.Since(a.started))
	if now-a.lastCheck.Load() < int64(a.cfg.ReloadInterval) {
		return
	}
	if !a.reloadMu.TryLock() {
		return
	}
	defer a.reloadMu.Unlock()
	a.lastCheck.Store(now)
	stamps := stampFiles(a.cfg.watchedFiles())
	if equalStamps(stamps, a.stamps) {
		return
	}
	a.stamps = stamps
	_ = a.reloadLocked() // logged there
}

// Watch checks the files every ReloadInterval until ctx ends, so that a
// bad edit is logged at once rather than at the next connection. The
// handler also checks on its own, so Watch is optional.
func (a *Authority) Watch(ctx context.Context) {
	if a.cfg.ReloadInterval < 0 {
		return
	}
	t := time.NewTicker(a.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.maybeReload()
		}
	}
}

package bridge

import (
	"context"
	"log/slog"
	"sync"
)

// window keeps only the latest terminal size. Updates never block: the SSH
// request loop must keep running whatever the platform does, and a client
// may resize long before the one-off is attached.
type window struct {
	mu         sync.Mutex
	cols, rows int
	changed    chan struct{}
	everSet    bool
}

func newWindow() *window {
	return &window{changed: make(chan struct{}, 1)}
}

func (w *window) set(cols, rows int) {
	w.mu.Lock()
	w.cols, w.rows, w.everSet = cols, rows, true
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default: // a wake-up is already pending; it will read the latest size
	}
}

func (w *window) get() (cols, rows int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cols, w.rows, w.everSet
}

// follow sends the current size once attached, then every later change,
// until ctx is done. A failed resize is logged and the session goes on: a
// wrong size is a nuisance, not a reason to kill the user's command.
func (w *window) follow(ctx context.Context, resize func(ctx context.Context, cols, rows int) error, log *slog.Logger) {
	for {
		if cols, rows, ok := w.get(); ok && cols > 0 && rows > 0 {
			if err := resize(ctx, cols, rows); err != nil && ctx.Err() == nil {
				log.Warn("resize failed", "cols", cols, "rows", rows, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		}
	}
}

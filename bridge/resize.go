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
	sent       [2]int // the size the platform last took; zero before; only the sender's goroutine uses it
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

// sendEarly sends the current size before attach, so that the command
// starts with it: the one-off's process starts at attach, and a size sent
// after could reach it only once it already runs (vim, or `stty size` as
// the first command, would see 80x24). A platform that refuses it gets it
// again once attached (oneoff.OneOff.Resize), and any other failure leaves
// it to follow.
func (w *window) sendEarly(ctx context.Context, resize func(ctx context.Context, cols, rows int) error, log *slog.Logger) {
	w.send(ctx, resize, log)
}

// follow sends the current size once attached unless the platform already
// took it, then every later change, until ctx is done.
func (w *window) follow(ctx context.Context, resize func(ctx context.Context, cols, rows int) error, log *slog.Logger) {
	for {
		w.send(ctx, resize, log)
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		}
	}
}

// send sends the current size if it is known and not the one last sent. A
// failed resize is logged and the session goes on: a wrong size is a
// nuisance, not a reason to kill the user's command.
func (w *window) send(ctx context.Context, resize func(ctx context.Context, cols, rows int) error, log *slog.Logger) {
	cols, rows, ok := w.get()
	if !ok || cols <= 0 || rows <= 0 || w.sent == [2]int{cols, rows} {
		return
	}
	if err := resize(ctx, cols, rows); err != nil {
		if ctx.Err() == nil {
			log.Warn("resize failed", "cols", cols, "rows", rows, "err", err)
		}
		return
	}
	w.sent = [2]int{cols, rows}
}

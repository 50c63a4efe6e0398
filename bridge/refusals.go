package bridge

import (
	"context"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// Refusals a client can repeat at will (forwarding requests, env requests,
// subsystems…) are logged per connection for their first few occurrences
// only: a client must not be able to write the log at the rate it sends
// requests. The rest are counted, and the count is logged in one line,
// msg="refusals not logged", at most once per refusalSummaryEvery and when
// the connection closes.
const (
	// refusalLogFirst is how many refusals with the same message one
	// connection logs one by one.
	refusalLogFirst = 10
	// refusalSummaryEvery is the shortest time between two summary lines
	// of the same message on one connection.
	refusalSummaryEvery = time.Minute
)

// refusalLog counts one connection's refusals by message. Messages are
// constants of the code, so the map stays small.
type refusalLog struct {
	mu    sync.Mutex
	kinds map[string]*refusalCount
	now   func() time.Time // nil: time.Now
}

type refusalCount struct {
	seen     int          // refusals with this message on the connection
	unlogged int          // refusals counted since the last line about them
	since    time.Time    // the last summary, or the first unlogged refusal
	level    slog.Level   // the level of the refusal's own line
	log      *slog.Logger // the logger of the latest refusal, for the summary
}

// refused logs the refusal msg with attrs on log, unless the connection has
// logged refusalLogFirst of the same message already; then it counts it.
func (r *refusalLog) refused(log *slog.Logger, level slog.Level, msg string, attrs ...any) {
	r.mu.Lock()
	if r.kinds == nil {
		r.kinds = map[string]*refusalCount{}
	}
	k := r.kinds[msg]
	if k == nil {
		k = &refusalCount{level: level}
		r.kinds[msg] = k
	}
	k.seen++
	if k.seen <= refusalLogFirst {
		r.mu.Unlock()
		log.Log(context.Background(), level, msg, attrs...)
		return
	}
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	if k.unlogged == 0 {
		k.since = now
	}
	k.unlogged++
	k.log = log
	var count int
	if now.Sub(k.since) >= refusalSummaryEvery {
		count, k.unlogged, k.since = k.unlogged, 0, now
	}
	r.mu.Unlock()
	if count > 0 {
		summarize(log, k.level, msg, count)
	}
}

// flush logs the count of every refusal not logged yet; the connection
// is closing.
func (r *refusalLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for msg, k := range r.kinds {
		if k.unlogged > 0 {
			summarize(k.log, k.level, msg, k.unlogged)
			k.unlogged = 0
		}
	}
}

func summarize(log *slog.Logger, level slog.Level, msg string, count int) {
	log.Log(context.Background(), level, "refusals not logged", "refusal", msg, "count", count)
}

// logRefusal logs a refusal on the connection st within its limits; with
// no connection state, plainly.
func logRefusal(st *connState, log *slog.Logger, level slog.Level, msg string, attrs ...any) {
	if st == nil {
		log.Log(context.Background(), level, msg, attrs...)
		return
	}
	st.refusals.refused(log, level, msg, attrs...)
}

// Longest client-given strings put in a log line, in bytes: a client must
// not be able to make one line as long as its packet.
const (
	// logCommandBytes is for exec commands, logged once per session with
	// their full length beside.
	logCommandBytes = 1 << 10
	// logNameBytes is for variable names, subsystem names and forwarding
	// targets: longer than any real one (a DNS name has at most 255 bytes).
	logNameBytes = 256
)

// cut returns s cut to at most n bytes, at the start of a UTF-8 sequence
// when s is valid UTF-8 there.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > n-4 && i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n
	}
	return s[:i]
}

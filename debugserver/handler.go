package debugserver

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
)

// StatsPath is where Handler serves Stats.
const StatsPath = "/debug/stats"

// Handler serves:
//
//   - GET /debug/stats: Stats as one JSON object; ?gc=1 forces a garbage
//     collection first (Read), so that the heap figures count only live
//     objects. A failed reading is a 500 with its reason as text.
//   - /debug/pprof/: net/http/pprof's index and every profile it names
//     (heap, goroutine, allocs, block, mutex, threadcreate), with
//     /debug/pprof/cmdline, profile (CPU, ?seconds=N), symbol and trace.
//
// Anything else is a 404.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatsPath, serveStats)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func serveStats(w http.ResponseWriter, r *http.Request) {
	gc := r.URL.Query().Get("gc")
	s, err := Read(gc == "1" || gc == "true")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s)
}

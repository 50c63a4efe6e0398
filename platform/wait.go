package platform

import "net/http"

// handleWait blocks until the one-off has ended and answers its exit code,
// or 408 when the platform killed it for inactivity (or because it was
// never attached).
func (p *Platform) handleWait(w http.ResponseWriter, r *http.Request, o *oneOff) {
	select {
	case <-o.ended:
	case <-r.Context().Done():
		return
	}
	o.mu.Lock()
	reason, code := o.reason, o.code
	o.mu.Unlock()
	switch reason {
	case endInactivity, endNeverAttached:
		writeError(w, http.StatusRequestTimeout, "the one-off container was stopped after a period of inactivity")
	case endStartFailed:
		writeError(w, http.StatusInternalServerError, "the one-off container could not start")
	default:
		writeJSON(w, http.StatusOK, map[string]int{"exit_code": code})
	}
}

package platform

import (
	"net/http"
	"time"
)

// handleOperation answers a one-off's start operation, served both under
// /v1/apps/{app}/operations/{op} (as the CLI rebuilds it) and /v1/operations/{op}.
func (p *Platform) handleOperation(w http.ResponseWriter, r *http.Request) {
	o := p.byOperation(r.PathValue("op"))
	if o == nil || (r.PathValue("app") != "" && r.PathValue("app") != o.app) {
		writeJSON(w, http.StatusNotFound, map[string]string{"resource": "operation", "error": "not found"})
		return
	}
	// The operation is done at once: the process starts on attach, and
	// finished_at says when the container was ready.
	created := o.created.UTC().Format(time.RFC3339Nano)
	data := map[string]any{"attach_url": p.URL() + "/" + o.token, "container_id": o.id}
	if !o.tty {
		data["tty"] = false
	}
	writeJSON(w, http.StatusOK, map[string]any{"operation": map[string]any{
		"id":                 o.opID,
		"app_id":             "app-" + o.app,
		"type":               "start-one-off",
		"status":             "done",
		"error":              "",
		"created_at":         created,
		"finished_at":        created,
		"start_one_off_data": data,
	}})
}

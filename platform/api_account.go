package platform

import (
	"net/http"
	"time"
)

// The one local account and region, for the calls Scalingo's CLI makes
// before a run (PROTOCOL.md section 6).
const (
	localUserID = "us-local"
	regionName  = "local"
)

func (p *Platform) handleUserSelf(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"user": map[string]string{
		"id": localUserID, "username": "local", "email": "local@localhost", "fullname": "Local user",
	}})
}

func (p *Platform) handleRegions(w http.ResponseWriter, _ *http.Request) {
	u := p.URL()
	writeJSON(w, http.StatusOK, map[string]any{"regions": []map[string]any{{
		"name": regionName, "display_name": "Embedded platform",
		"api": u, "database_api": u, "ssh": "", "dashboard": u, "default": true,
	}}})
}

func (p *Platform) handleApp(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	at := p.started.UTC().Format(time.RFC3339)
	writeJSON(w, http.StatusOK, map[string]any{"app": map[string]string{
		"id": "app-" + app, "name": app, "created_at": at, "updated_at": at, "region": regionName,
	}})
}

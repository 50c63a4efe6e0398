package platform

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers the API's plain error shape: {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeFieldErrors answers 422 in the API's validation shape:
// {"errors": {"field": ["message"]}}.
func writeFieldErrors(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]map[string][]string{"errors": {field: {msg}}})
}

func writeAppNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"resource": "app", "error": "not found"})
}

func writeUnauthorized(w http.ResponseWriter) {
	writeError(w, http.StatusUnauthorized, "You are not authorized to do this operation")
}

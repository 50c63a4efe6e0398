package platform

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/creack/pty"
)

// handleResize sets the terminal size from {"width": "80", "height": "25"}:
// Scalingo's CLI sends strings, its docs numbers; both are taken. 0 by 0
// (a client whose own terminal size is unknown) is ignored, as is a resize
// in pipe mode. A size sent before attach applies at start.
func (p *Platform) handleResize(w http.ResponseWriter, r *http.Request, o *oneOff) {
	var body struct {
		Width  json.RawMessage `json:"width"`
		Height json.RawMessage `json:"height"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	width, ok1 := parseDimension(body.Width)
	height, ok2 := parseDimension(body.Height)
	if !ok1 || !ok2 {
		writeFieldErrors(w, "size", "width and height must be integers from 0 to 65535")
		return
	}
	if width == 0 || height == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	o.mu.Lock()
	o.width, o.height = width, height
	proc := o.proc
	o.mu.Unlock()
	if proc != nil && proc.pty != nil && !proc.exited() {
		if err := pty.Setsize(proc.pty, &pty.Winsize{Cols: width, Rows: height}); err != nil {
			o.log.Debug("resize", "err", err)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// parseDimension reads a JSON number or a string holding one.
func parseDimension(raw json.RawMessage) (uint16, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
	} else {
		s = string(raw)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

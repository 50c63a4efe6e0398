package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// runBody is the body of POST /v1/apps/{app}/run.
type runBody struct {
	Command    string            `json:"command"`
	Env        map[string]string `json:"env"`
	Size       string            `json:"size"`
	Detached   bool              `json:"detached"`
	HasUploads bool              `json:"has_uploads"`
	TTY        *bool             `json:"tty"` // extension: false asks for pipe mode
}

var validSizes = []string{"XS", "S", "M", "L", "XL", "2XL"}

const maxRunBody = 1 << 20

// maxArgBytes keeps the command and each variable under the kernel's limit
// on one argument or environment string (128 KiB).
const maxArgBytes = 100 << 10

// handleRun makes a one-off and answers its operation, which is done at once:
// the process itself starts on attach. Quota breaches answer 429 with
// {"error": "…"}: the limit is on one-offs alive at once, so the same
// request succeeds again later, which is what 429 says. They carry no
// Retry-After: a slot comes free when a one-off ends, which nothing here
// can foresee, and the smallest Retry-After (1 s) would hold a client that
// backs off from a quarter of a second for longer than most slots take.
func (p *Platform) handleRun(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	var body runBody
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRunBody))
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	if field, msg := validateRun(&body); field != "" {
		writeFieldErrors(w, field, msg)
		return
	}
	if body.Detached {
		writeFieldErrors(w, "detached", "is not supported by the embedded platform")
		return
	}
	o := &oneOff{
		p:       p,
		id:      randomHex(16),
		opID:    randomHex(16),
		token:   randomToken(32),
		app:     app,
		command: body.Command,
		size:    body.Size,
		tty:     body.TTY == nil || *body.TTY || p.cfg.NoPipeMode,
		created: time.Now(),
		ended:   make(chan struct{}),
	}
	o.dir = p.stateDir + "/" + o.id
	o.log = p.log.With("app", app, "container", o.id)
	o.env = p.oneOffEnv(o, body.Env)
	if err := p.admit(o); err != nil {
		status := http.StatusTooManyRequests
		if errors.Is(err, errClosed) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, err.Error())
		return
	}
	o.mu.Lock()
	o.attachTimer = time.AfterFunc(p.cfg.AttachTimeout, o.dropIfNotAttached)
	o.mu.Unlock()
	if err := p.prepareDir(o); err != nil {
		o.log.Error("prepare one-off", "err", err)
		o.end(endStartFailed)
		writeError(w, http.StatusInternalServerError, "could not prepare the one-off container")
		return
	}
	o.log.Info("one-off created", "tty", o.tty, "command_len", len(o.command))
	opURL := p.URL() + "/v1/apps/" + app + "/operations/" + o.opID
	w.Header().Set("Location", opURL)
	writeJSON(w, http.StatusOK, map[string]any{
		"container":     o.containerJSON(),
		"operation_url": opURL,
		"operation":     o.opID,
	})
}

func validateRun(b *runBody) (field, msg string) {
	switch {
	case strings.TrimSpace(b.Command) == "":
		return "command", "can't be blank"
	case strings.ContainsRune(b.Command, 0):
		return "command", "is invalid"
	case len(b.Command) > maxArgBytes:
		return "command", "is too long"
	}
	if b.Size == "" {
		b.Size = "M"
	} else if !slices.Contains(validSizes, b.Size) {
		return "size", "is not a valid container size"
	}
	for k, v := range b.Env {
		if !validEnvName(k) || strings.ContainsRune(v, 0) || len(k)+len(v) >= maxArgBytes {
			return "env", fmt.Sprintf("%q is not a valid environment variable", k)
		}
	}
	return "", ""
}

// oneOffEnv is the process environment: sane defaults, then the app's
// environment, then the run's, each overriding the one before. Nothing of
// the platform's own environment leaks in.
func (p *Platform) oneOffEnv(o *oneOff, run map[string]string) []string {
	home := p.runner.home(o.tmpDir())
	env := map[string]string{
		"PATH":           "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME":           home,
		"SHELL":          "/bin/sh",
		"USER":           p.runner.userName,
		"LOGNAME":        p.runner.userName,
		"CONTAINER":      o.id,
		"CONTAINER_SIZE": o.size,
	}
	if o.tty {
		env["TERM"] = "xterm"
	}
	maps.Copy(env, p.cfg.Env)
	maps.Copy(env, run)
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// prepareDir makes the one-off's dir, locked, and in it the private /tmp
// with /tmp/uploads owned by the user it runs as.
func (p *Platform) prepareDir(o *oneOff) error {
	lock, err := p.state.make(o.id)
	if err != nil {
		return fmt.Errorf("one-off dir: %w", err)
	}
	o.mu.Lock()
	gone := o.dirGone
	if !gone {
		o.lock = lock
	}
	o.mu.Unlock()
	if gone { // ended meanwhile (by Shutdown)
		_ = removeTree(o.dir)
		lock.Close()
		return errClosed
	}
	if err := os.Mkdir(o.tmpDir(), 0o700); err != nil {
		return fmt.Errorf("one-off tmp: %w", err)
	}
	// Mkdir's mode is cut by the umask; /tmp is world-writable and sticky.
	if err := os.Chmod(o.tmpDir(), 0o1777); err != nil {
		return fmt.Errorf("one-off tmp: %w", err)
	}
	if err := os.Mkdir(o.uploadDir(), 0o755); err != nil {
		return fmt.Errorf("one-off uploads: %w", err)
	}
	if p.runner.uid >= 0 {
		if err := os.Chown(o.uploadDir(), p.runner.uid, p.runner.gid); err != nil {
			return fmt.Errorf("one-off uploads: %w", err)
		}
	}
	return nil
}

// dropIfNotAttached ends a one-off nobody attached to in time.
func (o *oneOff) dropIfNotAttached() {
	o.mu.Lock()
	attached := o.attached
	o.mu.Unlock()
	if !attached {
		o.log.Info("one-off never attached, dropping it")
		o.end(endNeverAttached)
	}
}

func (o *oneOff) containerJSON() map[string]any {
	state := "booting"
	o.mu.Lock()
	switch {
	case o.reason != endNone:
		state = "stopped"
	case o.proc != nil:
		state = "running"
	}
	o.mu.Unlock()
	c := map[string]any{
		"id":         o.id,
		"type":       "one-off",
		"type_index": o.index,
		"label":      fmt.Sprintf("one-off-%d", o.index),
		"state":      state,
		"size":       o.size,
		"created_at": o.created.UTC().Format(time.RFC3339Nano),
		"command":    o.command,
		"app_name":   o.app,
	}
	if !o.tty {
		c["tty"] = false
	}
	return c
}

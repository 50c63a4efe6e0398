package oneoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// RunRequest is what to start.
type RunRequest struct {
	App     string
	Command string            // passed through verbatim
	Env     map[string]string // added to the app's environment
	Size    string            // "" => "M"
	TTY     bool              // false => ask for pipe mode (`"tty": false` in the run body)
	// Waiting, when not nil, is called once, the first time the platform
	// answers the run with 429 and Start waits for a free slot (see Start).
	// It is called on Start's goroutine and must not block.
	Waiting func()
}

// runBody is the JSON body of POST /v1/apps/{app}/run.
type runBody struct {
	Command    string            `json:"command"`
	Env        map[string]string `json:"env"`
	Size       string            `json:"size"`
	Detached   bool              `json:"detached"`
	HasUploads bool              `json:"has_uploads"`
	// Absent means a terminal; only false (pipe mode) is ever sent.
	TTY *bool `json:"tty,omitempty"`
}

func (r RunRequest) body() runBody {
	b := runBody{Command: r.Command, Env: r.Env, Size: r.Size}
	if b.Env == nil {
		b.Env = map[string]string{}
	}
	if b.Size == "" {
		b.Size = "M"
	}
	if !r.TTY {
		b.TTY = new(bool)
	}
	return b
}

// Start asks for a one-off container and polls its operation until it is
// ready to attach (or failed, or ctx ended), all within StartTimeout. A run
// answered 429 (too many one-offs or requests for now) is asked again once
// a slot may be free (runWhenFree); other refusals fail at once. A one-off
// that was created but failed to become ready is left to the platform,
// which drops one-offs never attached.
func (c *Client) Start(ctx context.Context, req RunRequest) (*OneOff, error) {
	sctx, cancel := context.WithTimeout(ctx, c.startTimeout)
	defer cancel()
	run, err := c.runWhenFree(ctx, sctx, req)
	if err != nil {
		return nil, err
	}
	st, err := c.waitOperation(ctx, sctx, run.operationURL)
	if err != nil {
		return nil, err
	}
	o := &OneOff{
		c:           c,
		attach:      st.attachURL,
		containerID: st.containerID,
		label:       run.label,
	}
	if o.containerID == "" {
		o.containerID = run.containerID
	}
	// Pipe mode only when asked and echoed, and contradicted nowhere.
	if !req.TTY {
		echoed := isFalse(run.tty) || isFalse(st.tty)
		denied := isTrue(run.tty) || isTrue(st.tty)
		o.pipe = echoed && !denied
	}
	c.log.Debug("one-off ready", "app", req.App, "container", o.containerID, "label", o.label, "pipe", o.pipe)
	return o, nil
}

func isFalse(b *bool) bool { return b != nil && !*b }
func isTrue(b *bool) bool  { return b != nil && *b }

// Waiting for a free slot: a run answered 429 is asked again after the
// answer's Retry-After, or else after a back-off doubling from
// firstSlotDelay to maxSlotDelay, each wait drawn at random from the upper
// half of the step, so that sessions refused together do not come back
// together.
const (
	firstSlotDelay = 250 * time.Millisecond
	maxSlotDelay   = 5 * time.Second
)

// runWhenFree runs req, and while the platform answers 429 waits and asks
// again, until sctx (ctx bounded by StartTimeout) ends. It calls req.Waiting
// before the first wait. The last 429 is the error (ErrQuota) when no slot
// came free before the deadline, or at once when the platform's Retry-After
// falls past it. A run that got no answer before the deadline is
// ErrStartTimeout; ctx's end is reported as its cause.
func (c *Client) runWhenFree(ctx, sctx context.Context, req RunRequest) (runResult, error) {
	var step time.Duration
	waited := false
	for {
		res, err := c.run(sctx, req)
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
			if err != nil && ctx.Err() == nil && sctx.Err() != nil {
				return runResult{}, &APIError{Op: "run", Kind: ErrStartTimeout,
					Message: fmt.Sprintf("no one-off started within %s", c.startTimeout)}
			}
			return res, err
		}
		step = min(max(2*step, firstSlotDelay), maxSlotDelay)
		wait := step/2 + rand.N(step/2+1)
		if ae.hasRetryAfter {
			wait = ae.retryAfter
		}
		deadline, _ := sctx.Deadline()
		if ae.hasRetryAfter && wait >= time.Until(deadline) {
			return runResult{}, err
		}
		if !waited && req.Waiting != nil {
			req.Waiting()
		}
		waited = true
		c.log.Debug("run refused for now, waiting for a slot", "app", req.App, "wait", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-sctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return runResult{}, fmt.Errorf("run: %w", context.Cause(ctx))
			}
			return runResult{}, err
		}
	}
}

// runResult is the useful part of the run answer.
type runResult struct {
	operationURL string
	containerID  string
	label        string
	tty          *bool
}

func (c *Client) run(ctx context.Context, req RunRequest) (runResult, error) {
	const op = "run"
	if req.App == "" || req.App == "." || req.App == ".." {
		return runResult{}, &APIError{Op: op, Kind: ErrAppNotFound, Message: fmt.Sprintf("no app named %q", req.App)}
	}
	body, err := json.Marshal(req.body())
	if err != nil {
		return runResult{}, &APIError{Op: op, Kind: ErrInvalid, Err: err}
	}
	var a answer
	for retried := false; ; retried = true {
		tok, cached, err := c.bearerCached(ctx)
		if err != nil {
			return runResult{}, err
		}
		a, err = c.send(ctx, request{
			op:          op,
			svc:         svcRun,
			method:      "POST",
			url:         c.api.String() + "/v1/apps/" + url.PathEscape(req.App) + "/run",
			auth:        bearerAuth(tok),
			contentType: "application/json",
			body:        bytes.NewReader(body),
			length:      int64(len(body)),
			timeout:     requestTimeout,
		})
		if err != nil {
			return runResult{}, err
		}
		if a.status != 401 {
			break
		}
		c.tokens.forget(tok)
		// A cached token refused: once more with a fresh one. A 401 means
		// nothing was started, so the retry cannot start two.
		if !cached || retried {
			break
		}
	}
	if !a.ok() {
		return runResult{}, apiErrorOf(op, svcRun, a)
	}
	if a.oversized {
		return runResult{}, malformed(op, a.status, "answer over 1 MiB", nil)
	}
	res, err := decodeRunAnswer(a.body, a.header.Get("Location"), c.api, req.App)
	if err != nil {
		return runResult{}, malformed(op, a.status, "", err)
	}
	return res, nil
}

// decodeRunAnswer reads the run answer. The operation URL comes from the
// body's operation_url, else the Location header, else is rebuilt from the
// operation id the way Scalingo's CLI does. Fields the client does not need
// are not checked, so that an odd but usable answer still works.
func decodeRunAnswer(body []byte, location string, api *url.URL, app string) (runResult, error) {
	var m struct {
		Container    json.RawMessage `json:"container"`
		OperationURL json.RawMessage `json:"operation_url"`
		Operation    json.RawMessage `json:"operation"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return runResult{}, fmt.Errorf("run answer: %w", err)
	}
	var res runResult
	var ct struct {
		ID    json.RawMessage `json:"id"`
		Label json.RawMessage `json:"label"`
		TTY   json.RawMessage `json:"tty"`
	}
	if json.Unmarshal(m.Container, &ct) == nil {
		res.containerID, _ = jsonString(ct.ID)
		res.label, _ = jsonString(ct.Label)
		res.tty = jsonBool(ct.TTY)
	}
	candidates := make([]string, 0, 3)
	if s, ok := jsonString(m.OperationURL); ok && s != "" {
		candidates = append(candidates, s)
	}
	if location != "" {
		candidates = append(candidates, location)
	}
	if id, ok := jsonString(m.Operation); ok && id != "" {
		candidates = append(candidates, api.String()+"/v1/apps/"+url.PathEscape(app)+"/operations/"+url.PathEscape(id))
	}
	for _, s := range candidates {
		if u, err := resolveHTTPURL(api, s); err == nil {
			res.operationURL = u.String()
			return res, nil
		}
	}
	return runResult{}, errors.New("run answer: no usable operation URL (operation_url, Location or operation)")
}

// jsonBool is a JSON boolean, or nil when absent or of another type.
func jsonBool(raw json.RawMessage) *bool {
	var b bool
	if len(raw) == 0 || json.Unmarshal(raw, &b) != nil {
		return nil
	}
	return &b
}

// resolveHTTPURL resolves ref against base and insists on http(s) and a host.
func resolveHTTPURL(base *url.URL, ref string) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, err
	}
	u := base.ResolveReference(r)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	u.User = nil
	u.Fragment = ""
	// What is sent must parse back to the same place.
	if v, err := url.Parse(u.String()); err != nil || v.Host != u.Host {
		return nil, errors.New("does not survive a round trip")
	}
	return u, nil
}

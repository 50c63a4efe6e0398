package oneoff

import (
	"context"
	"encoding/json"
	"strconv"
)

// Resize tells the one-off's terminal its size in columns and rows: PUT
// {attach} with the numbers as strings, as Scalingo's CLI sends them
// (PROTOCOL.md section 3). A size with a zero or negative side (an unknown
// terminal size) is not sent. Meaningful in terminal mode.
//
// Sent before Attach, the size is in place when the command starts (the
// embedded platform starts the process at attach, with the last size it
// was given). A platform that takes a resize only once attached answers
// such an early one with a 4xx: Resize then returns nil, keeps the size and
// Attach sends it again right after the 200, so the size still arrives,
// only later. Any other failure is an *APIError (ErrUnreachable, or the
// kind of its status). Not to be called concurrently with Attach.
func (o *OneOff) Resize(ctx context.Context, width, height int) error {
	const op = "resize"
	if width <= 0 || height <= 0 {
		return nil
	}
	a, err := o.putSize(ctx, width, height)
	if err != nil {
		return err
	}
	if a.ok() {
		return nil
	}
	o.mu.Lock()
	early := !o.attached && a.status >= 400 && a.status < 500
	if early {
		o.early = [2]int{width, height}
	}
	o.mu.Unlock()
	if early {
		o.c.log.Debug("resize refused before attach, sent again once attached", "status", a.status)
		return nil
	}
	return apiErrorOf(op, svcAttach, a)
}

// resendEarlySize sends, once attached, a size the platform refused before.
// A failure is logged: a wrong size is not worth failing the attach for.
func (o *OneOff) resendEarlySize(ctx context.Context) {
	o.mu.Lock()
	o.attached = true
	size := o.early
	o.early = [2]int{}
	o.mu.Unlock()
	if size[0] == 0 {
		return
	}
	a, err := o.putSize(ctx, size[0], size[1])
	if err == nil && !a.ok() {
		err = apiErrorOf("resize", svcAttach, a)
	}
	if err != nil {
		o.c.log.Warn("resize after attach failed", "cols", size[0], "rows", size[1], "err", err)
	}
}

// putSize sends one resize and returns the platform's answer.
func (o *OneOff) putSize(ctx context.Context, width, height int) (answer, error) {
	const op = "resize"
	body, _ := json.Marshal(struct {
		Width  string `json:"width"`
		Height string `json:"height"`
	}{strconv.Itoa(width), strconv.Itoa(height)})
	tok, err := o.c.bearer(ctx)
	if err != nil {
		return answer{}, err
	}
	return o.c.send(ctx, request{
		op:          op,
		svc:         svcAttach,
		method:      "PUT",
		url:         o.attach.String(),
		auth:        basicAuth(tok),
		contentType: "application/json",
		body:        bytesReader(body),
		length:      int64(len(body)),
		timeout:     requestTimeout,
	})
}

package oneoff

import (
	"context"
	"encoding/json"
	"strconv"
)

// Resize tells the one-off's terminal its size: PUT {attach} with the
// numbers as strings, as Scalingo's CLI sends them. A size with a zero or
// negative side (an unknown terminal size) is not sent. Meaningful after
// Attach, in terminal mode.
func (o *OneOff) Resize(ctx context.Context, width, height int) error {
	const op = "resize"
	if width <= 0 || height <= 0 {
		return nil
	}
	body, _ := json.Marshal(struct {
		Width  string `json:"width"`
		Height string `json:"height"`
	}{strconv.Itoa(width), strconv.Itoa(height)})
	tok, err := o.c.bearer(ctx)
	if err != nil {
		return err
	}
	a, err := o.c.send(ctx, request{
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
	if err != nil {
		return err
	}
	if !a.ok() {
		return failure(op, svcAttach, a)
	}
	return nil
}

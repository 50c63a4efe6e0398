package oneoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Wait returns the process's exit code: GET {attach}/wait, which blocks
// until the process has exited; call it after the stream ended. 408 means
// the platform killed the one-off for inactivity: ErrInactivity. Only ctx
// bounds it.
func (o *OneOff) Wait(ctx context.Context) (int, error) {
	const op = "wait"
	tok, err := o.c.bearer(ctx)
	if err != nil {
		return 0, err
	}
	a, err := o.c.send(ctx, request{
		op:     op,
		svc:    svcWait,
		method: "GET",
		url:    subURL(o.attach, "/wait"),
		auth:   basicAuth(tok),
	})
	if err != nil {
		return 0, err
	}
	if !a.ok() {
		return 0, apiErrorOf(op, svcWait, a)
	}
	if a.oversized {
		return 0, malformed(op, a.status, "answer over 1 MiB", nil)
	}
	code, err := decodeWait(a.body)
	if err != nil {
		return 0, malformed(op, a.status, "", err)
	}
	return code, nil
}

// decodeWait reads {"exit_code": N} leniently: N may be a JSON number with
// an integral value or a string holding an integer; other keys are ignored.
func decodeWait(body []byte) (int, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return 0, fmt.Errorf("wait answer: %w", err)
	}
	raw, ok := m["exit_code"]
	if !ok {
		return 0, errors.New("wait answer: no exit_code")
	}
	var n json.Number
	if s, ok := jsonString(raw); ok {
		n = json.Number(strings.TrimSpace(s))
	} else {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			return 0, fmt.Errorf("wait answer: exit_code is not a number")
		}
	}
	if i, err := strconv.ParseInt(string(n), 10, 32); err == nil {
		return int(i), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, fmt.Errorf("wait answer: exit_code %q is not an integer", string(n))
	}
	return int(f), nil
}

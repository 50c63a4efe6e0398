package oneoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Polling: the first poll at once (a fast platform is often done already),
// then a back-off doubling from firstDelay to maxDelay.
const (
	firstDelay = 25 * time.Millisecond
	maxDelay   = time.Second
	// maxRetryAfter caps how long a 429's Retry-After may hold a poll.
	maxRetryAfter = 10 * time.Second
)

// opState is the useful part of an operation answer.
type opState struct {
	status      string
	message     string
	attachURL   *url.URL
	containerID string
	tty         *bool
}

// waitOperation polls opURL until the operation is done or in error, or
// pctx (ctx bounded by what is left of c.startTimeout) ends.
func (c *Client) waitOperation(ctx, pctx context.Context, opURL string) (opState, error) {
	const op = "wait for operation"
	last := "none"
	timedOut := func() error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		return &APIError{Op: op, Kind: ErrStartTimeout,
			Message: fmt.Sprintf("not done after %s (last status: %s)", c.startTimeout, last)}
	}
	var delay time.Duration
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-pctx.Done():
				t.Stop()
				return opState{}, timedOut()
			}
		}
		st, retryAfter, err := c.pollOnce(pctx, opURL)
		if err != nil {
			if pctx.Err() != nil {
				return opState{}, timedOut()
			}
			return opState{}, err
		}
		switch {
		case retryAfter > 0:
			last = "rate limited"
		case st.status == "done":
			return st, nil
		case st.status == "error":
			msg := st.message
			if msg == "" {
				msg = "the platform gave no reason"
			}
			return opState{}, &APIError{Op: op, Status: 200, Kind: ErrOperationFailed, Message: msg}
		default:
			last = st.status
		}
		delay = min(max(2*delay, firstDelay), maxDelay)
		delay = max(delay, retryAfter)
	}
}

// pollOnce asks once. A 429 is not a failure while polling: it returns the
// time to hold off instead.
func (c *Client) pollOnce(ctx context.Context, opURL string) (opState, time.Duration, error) {
	const op = "wait for operation"
	tok, err := c.bearer(ctx)
	if err != nil {
		return opState{}, 0, err
	}
	a, err := c.send(ctx, request{
		op:      op,
		svc:     svcOperation,
		method:  "GET",
		url:     opURL,
		auth:    bearerAuth(tok),
		timeout: requestTimeout,
	})
	if err != nil {
		return opState{}, 0, err
	}
	if a.status == 429 {
		return opState{}, retryAfter(a.header.Get("Retry-After")), nil
	}
	if a.status != 200 {
		if a.status == 401 {
			c.tokens.forget(tok)
		}
		return opState{}, 0, apiErrorOf(op, svcOperation, a)
	}
	if a.oversized {
		return opState{}, 0, malformed(op, a.status, "answer over 1 MiB", nil)
	}
	st, err := decodeOperation(a.body)
	if err != nil {
		return opState{}, 0, malformed(op, a.status, "", err)
	}
	return st, 0, nil
}

// retryAfter reads a poll's Retry-After (parseRetryAfter); maxDelay when
// it has none, at least firstDelay, at most maxRetryAfter.
func retryAfter(v string) time.Duration {
	d := maxDelay
	if p, ok := parseRetryAfter(v, time.Now()); ok {
		d = min(p, maxRetryAfter)
	}
	return max(d, firstDelay)
}

// decodeOperation reads an operation answer. status must be there; a done
// operation must carry a usable attach_url in start_one_off_data.
func decodeOperation(body []byte) (opState, error) {
	var m struct {
		Operation *struct {
			Status json.RawMessage `json:"status"`
			Error  json.RawMessage `json:"error"`
			Data   json.RawMessage `json:"start_one_off_data"`
		} `json:"operation"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return opState{}, fmt.Errorf("operation answer: %w", err)
	}
	if m.Operation == nil {
		return opState{}, errors.New("operation answer: no operation")
	}
	var st opState
	var ok bool
	if st.status, ok = jsonString(m.Operation.Status); !ok || st.status == "" {
		return opState{}, errors.New("operation answer: no status")
	}
	if s, ok := jsonString(m.Operation.Error); ok {
		st.message = cleanMessage(s)
	}
	if st.status != "done" {
		return st, nil
	}
	var data struct {
		AttachURL   json.RawMessage `json:"attach_url"`
		ContainerID json.RawMessage `json:"container_id"`
		TTY         json.RawMessage `json:"tty"`
	}
	if err := json.Unmarshal(m.Operation.Data, &data); err != nil {
		return opState{}, errors.New("operation answer: done without start_one_off_data")
	}
	raw, ok := jsonString(data.AttachURL)
	if !ok || raw == "" {
		return opState{}, errors.New("operation answer: done without attach_url")
	}
	u, err := parseAttachURL(raw)
	if err != nil {
		return opState{}, fmt.Errorf("operation answer: attach_url: %w", err)
	}
	st.attachURL = u
	st.containerID, _ = jsonString(data.ContainerID)
	st.tty = jsonBool(data.TTY)
	return st, nil
}

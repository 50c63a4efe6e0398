package oneoff

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// request is one HTTP call to the API or the attach service.
type request struct {
	op          string
	svc         service
	method      string
	url         string
	auth        string // the Authorization header value
	contentType string
	body        io.Reader
	length      int64         // body length, known up front
	timeout     time.Duration // 0: bounded by ctx only
}

// answer is a response with its body read, capped at maxAnswerBytes.
type answer struct {
	status    int
	header    http.Header
	body      []byte
	oversized bool
}

func (a answer) ok() bool { return a.status >= 200 && a.status < 300 }

// send performs r and reads its answer. A transport failure is
// ErrUnreachable, unless ctx ended, which is reported as ctx's cause.
func (c *Client) send(ctx context.Context, r request) (answer, error) {
	rctx := ctx
	if r.timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(rctx, r.method, r.url, r.body)
	if err != nil {
		return answer{}, malformed(r.op, 0, "bad url", nil) // err would repeat the URL
	}
	if r.body != nil {
		req.ContentLength = r.length
		if r.length == 0 {
			req.Body = http.NoBody
		}
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, transportError(ctx, r.op, timedOut(ctx, rctx, r.timeout, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, transportError(ctx, r.op, timedOut(ctx, rctx, r.timeout, err))
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if len(body) > maxAnswerBytes {
		a.body, a.oversized = nil, true
	}
	// No URL in the log: attach URLs carry a secret.
	c.log.Debug("one-off api call", "op", r.op, "status", a.status, "took", time.Since(start).Round(time.Millisecond))
	return a, nil
}

const userAgent = "sshbridge-oneoff/1"

// timedOut names the per-request timeout as such: wrapping the deadline
// error would make it look like the caller's own ctx ended.
func timedOut(ctx, rctx context.Context, d time.Duration, err error) error {
	if ctx.Err() == nil && rctx.Err() != nil {
		return fmt.Errorf("no answer within %s", d)
	}
	return err
}

// transportError classifies a failure to get an answer.
func transportError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	// url.Error repeats the URL, and attach URLs are secrets.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &APIError{Op: op, Kind: ErrUnreachable, Err: err}
}

// apiErrorOf turns a non-success answer into an *APIError.
func apiErrorOf(op string, svc service, a answer) *APIError {
	e := &APIError{Op: op, Status: a.status, Message: errorMessage(a.body), Kind: statusKind(svc, a.status)}
	if a.status == http.StatusTooManyRequests {
		e.retryAfter, e.hasRetryAfter = parseRetryAfter(a.header.Get("Retry-After"), time.Now())
	}
	return e
}

// parseRetryAfter reads a Retry-After value (RFC 9110 section 10.2.3): a
// whole number of seconds, or an HTTP date, taken from now (a date past is
// 0). ok is false when v is empty or neither form.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// errorMessage extracts the platform's words from an error body:
// {"error": "..."}, {"message": "..."}, {"errors": {"field": ["msg"]}}, or
// short plain text.
func errorMessage(body []byte) string {
	var m struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
		Errors  json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		if json.Valid(body) {
			return ""
		}
		return cleanMessage(string(body))
	}
	if s, ok := jsonString(m.Error); ok && s != "" {
		return cleanMessage(s)
	}
	if s, ok := jsonString(m.Message); ok && s != "" {
		return cleanMessage(s)
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(m.Errors, &fields) == nil && len(fields) > 0 {
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		parts := make([]string, 0, len(names))
		for _, k := range names {
			var msgs []string
			if json.Unmarshal(fields[k], &msgs) != nil {
				if s, ok := jsonString(fields[k]); ok {
					msgs = []string{s}
				}
			}
			parts = append(parts, k+" "+strings.Join(msgs, ", "))
		}
		return cleanMessage(strings.Join(parts, "; "))
	}
	return ""
}

func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

const maxMessageRunes = 300

// cleanMessage makes platform text safe to print on one line of a user's
// terminal: no control characters, bounded length.
func cleanMessage(s string) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if !unicode.IsPrint(r) {
			continue
		}
		if n+btoi(space) >= maxMessageRunes {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func basicAuth(token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token))
}

func bearerAuth(token string) string {
	return "Bearer " + token
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

package oneoff

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Kinds of failure. An *APIError carries one of them as its Kind; test with
// errors.Is.
var (
	// ErrAppNotFound: the API does not know the app (404 on run).
	ErrAppNotFound = errors.New("app not found")
	// ErrUnauthorized: the API token or bearer token was refused (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrQuota: too many one-offs or too many requests (402, 403, 409, 429).
	ErrQuota = errors.New("quota or rate limit reached")
	// ErrInvalid: the platform refused the run request as invalid (400, 422).
	ErrInvalid = errors.New("invalid request")
	// ErrOperationFailed: the start operation ended in status "error";
	// Message holds the platform's explanation.
	ErrOperationFailed = errors.New("one-off failed to start")
	// ErrStartTimeout: the operation was not done within StartTimeout.
	ErrStartTimeout = errors.New("one-off not ready in time")
	// ErrAttachRefused: the attach service refused attach, resize or wait.
	ErrAttachRefused = errors.New("attach refused")
	// ErrUploadRefused: the attach service refused a file.
	ErrUploadRefused = errors.New("upload refused")
	// ErrInactivity: the platform killed the one-off for inactivity (408 on /wait).
	ErrInactivity = errors.New("one-off killed for inactivity")
	// ErrUnreachable: no connection, a broken connection, no answer in time,
	// or a 5xx answer.
	ErrUnreachable = errors.New("platform unreachable")
	// ErrMalformed: an answer that is not what the protocol says (bad or
	// oversized JSON, a missing field, an unexpected status).
	ErrMalformed = errors.New("malformed answer")
)

// APIError is a failed call. Unwrap returns both Kind and Err, so errors.Is
// matches the kind and the underlying cause alike.
type APIError struct {
	Op      string // what was attempted: "token exchange", "run", "upload", ...
	Status  int    // HTTP status, 0 when there was no answer
	Message string // the platform's own words, cleaned for one line; may be ""
	Kind    error  // one of the Err* sentinels
	Err     error  // the underlying cause, may be nil

	// The Retry-After of a 429 answer, when it had a readable one.
	retryAfter    time.Duration
	hasRetryAfter bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("failed")
	}
	if e.Status != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Kind and Err, whichever are set.
func (e *APIError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func malformed(op string, status int, msg string, err error) *APIError {
	return &APIError{Op: op, Status: status, Message: msg, Kind: ErrMalformed, Err: err}
}

// Which calls a status is mapped for: the same status means different
// things on the regional API and on the attach service.
type service int

const (
	svcAuth service = iota
	svcRun
	svcOperation
	svcUpload
	svcAttach // attach, resize
	svcWait
)

// statusKind maps a non-success HTTP status to a kind of failure.
func statusKind(svc service, status int) error {
	if status >= 500 {
		return ErrUnreachable
	}
	switch svc {
	case svcUpload:
		return ErrUploadRefused
	case svcWait:
		if status == 408 {
			return ErrInactivity
		}
		return ErrAttachRefused
	case svcAttach:
		return ErrAttachRefused
	}
	switch status {
	case 401:
		return ErrUnauthorized
	case 402, 403, 409, 429:
		return ErrQuota
	case 400, 422:
		if svc == svcAuth {
			return ErrUnauthorized
		}
		return ErrInvalid
	case 404:
		switch svc {
		case svcRun:
			return ErrAppNotFound
		case svcOperation:
			return ErrOperationFailed
		}
		// A token exchange that is not found: the auth URL is wrong.
		return ErrUnreachable
	}
	return ErrMalformed
}

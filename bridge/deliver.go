package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"

	"sshbridge/oneoff"
)

// deliverError names the pending file whose upload failed.
type deliverError struct {
	name string
	err  error
}

func (e *deliverError) Error() string { return fmt.Sprintf("upload %q: %v", e.name, e.err) }
func (e *deliverError) Unwrap() error { return e.err }

// deliver sends the pending uploads of (user, app) to the one-off before
// anyone attaches, as the platform requires. A refused file stops the
// session with a sentence naming it and the platform's reason; that file and
// the ones after it stay pending.
func (sess *session) deliver(ctx context.Context, o *oneoff.OneOff) error {
	up := sess.srv.deps.Uploads
	if up == nil {
		return nil
	}
	send := func(ctx context.Context, name string, size int64, r io.Reader) error {
		if err := o.Upload(ctx, name, size, r); err != nil {
			return &deliverError{name: name, err: err}
		}
		return nil
	}
	err := up.Deliver(ctx, sess.identity(), sess.app, send, sess.uploadProgress())
	if err == nil {
		return nil
	}
	var de *deliverError
	if !errors.As(err, &de) {
		return &failure{ExitInternal, "The bridge could not read a pending upload; it stays pending.", err}
	}
	if !errors.Is(err, oneoff.ErrUploadRefused) {
		return err
	}
	reason := "refused"
	var apiErr *oneoff.APIError
	if errors.As(err, &apiErr) && apiErr.Message != "" {
		reason = oneLine(apiErr.Message)
	}
	return &failure{ExitUploadRefused,
		fmt.Sprintf("The platform refused the upload of %q (%s); it stays pending with the files not yet delivered.", de.name, reason), err}
}

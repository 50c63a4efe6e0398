package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"sshbridge/oneoff"
)

// deliverError names the pending file whose upload failed.
type deliverError struct {
	name string
	err  error
}

func (e *deliverError) Error() string { return fmt.Sprintf("upload %q: %v", e.name, e.err) }
func (e *deliverError) Unwrap() error { return e.err }

// deliverAndAttach sends the pending uploads of (user, app) to the one-off
// before anyone attaches, as the platform requires, then attaches. The
// files leave the staging area only once the attach succeeded: a one-off
// that never attached never ran the command, and whatever it took is lost
// with it. When either step fails, the user's line names every file, all
// still pending for the next session.
//
// The delivered files leave the staging area while the command starts
// (removing them from an object store takes several requests); committed
// waits until they have, and the session calls it before it reports its
// end, so that a client that saw the session end never finds a delivered
// file still pending.
func (sess *session) deliverAndAttach(ctx context.Context, o OneOff) (stream Stream, committed func(), err error) {
	up := sess.srv.deps.Deliverer
	if up == nil {
		stream, err := o.Attach(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("attach: %w", err)
		}
		return stream, func() {}, nil
	}
	d, err := sess.deliver(ctx, up, o)
	if err != nil {
		return nil, nil, err
	}
	stream, err = o.Attach(ctx)
	if err != nil {
		files := d.Files()
		d.Release()
		err = fmt.Errorf("attach: %w", err)
		if len(files) == 0 {
			return nil, nil, err
		}
		f := classify(sess.app, err)
		return nil, nil, &exitFailure{f.code, f.message + " " + stillPending(files), err}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Commit(); err != nil {
			// They were delivered and the one-off runs: the next session
			// gets them again, which beats losing them.
			sess.log.Warn("delivered uploads stay pending", "files", len(d.Files()), "err", err)
		} else {
			sess.reportDelivered()
		}
	}()
	return stream, func() { <-done }, nil
}

// deliver sends the pending files. A failure stops the session with a
// sentence naming the file, the cause, and every file still pending.
func (sess *session) deliver(ctx context.Context, up Deliverer, o OneOff) (Delivery, error) {
	send := func(ctx context.Context, name string, size int64, r io.Reader) error {
		if err := o.Upload(ctx, name, size, r); err != nil {
			return &deliverError{name: name, err: err}
		}
		return nil
	}
	progress, failed := sess.uploadProgress()
	progress = sess.observeDelivery(progress)
	d, err := up.Deliver(ctx, sess.identity(), sess.app, send, progress)
	if err == nil {
		return d, nil
	}
	failed()
	var pending []string
	var sp interface{ StillPending() []string }
	if errors.As(err, &sp) {
		pending = sp.StillPending()
	}
	var de *deliverError
	switch {
	case ctx.Err() != nil:
		return nil, err
	case errors.Is(err, ErrStagingUnavailable) && !errors.As(err, &de) && len(pending) == 0:
		// The store could not even list the files: whether any is pending
		// is not known, and a session with none must not be told it has.
		return nil, &exitFailure{ExitInternal, "The upload store is unavailable, so the bridge cannot tell whether files are pending for you, and runs nothing before it can; try again later.", err}
	case errors.Is(err, ErrStagingUnavailable) && !errors.As(err, &de):
		return nil, &exitFailure{ExitInternal, joinSentences("The upload store is unavailable, so your pending files could not be delivered; try again later.", stillPending(pending)), err}
	case !errors.As(err, &de):
		return nil, &exitFailure{ExitInternal, joinSentences("The bridge could not read a pending upload.", stillPending(pending)), err}
	case errors.Is(err, oneoff.ErrUploadRefused):
		sess.srv.observer().Upload(UploadEvent{Event: "refused", User: sess.identity(), App: sess.app, Name: de.name, Reason: "platform"})
		reason := "refused"
		var apiErr *oneoff.APIError
		if errors.As(err, &apiErr) && apiErr.Message != "" {
			reason = oneLine(apiErr.Message)
		}
		return nil, &exitFailure{ExitUploadRefused,
			joinSentences(fmt.Sprintf("The platform refused the upload of %q (%s).", de.name, reason), stillPending(pending)), err}
	}
	f := classify(sess.app, err)
	return nil, &exitFailure{f.code, joinSentences(fmt.Sprintf("The upload of %q failed.", de.name), f.message, stillPending(pending)), err}
}

// maxNamed bounds the names a failure line lists: past it, a count.
const maxNamed = 100

// stillPending says that files are still pending, naming them ("" for
// none). Names are quoted with Go's escapes, so that no control character
// of a name reaches the terminal.
func stillPending(files []string) string {
	if len(files) == 0 {
		return ""
	}
	named := make([]string, 0, min(len(files), maxNamed))
	for _, f := range files[:min(len(files), maxNamed)] {
		named = append(named, strconv.Quote(f))
	}
	list := strings.Join(named, ", ")
	if len(files) > maxNamed {
		list += fmt.Sprintf(" and %d more", len(files)-maxNamed)
	}
	if len(files) == 1 {
		return "This file stays pending for your next session: " + list + "."
	}
	return fmt.Sprintf("These %d files stay pending for your next session: %s.", len(files), list)
}

// joinSentences makes one line of sentences, leaving out empty ones.
func joinSentences(sentences ...string) string {
	out := sentences[:0:0]
	for _, s := range sentences {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

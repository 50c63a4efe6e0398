package bridge

import (
	"errors"
	"fmt"

	"sshbridge/appname"
	"sshbridge/oneoff"
)

// exitFailure is what the user is told when the bridge ends a session itself:
// one fixed sentence and an exit code. The cause goes to the log only.
type exitFailure struct {
	code    int
	message string
	cause   error
}

func (f *exitFailure) Error() string {
	if f.cause == nil {
		return f.message
	}
	return fmt.Sprintf("%s: %v", f.message, f.cause)
}

func (f *exitFailure) Unwrap() error { return f.cause }

// classify turns an error from the one-off API into the sentence and exit
// code the user sees. Messages never carry the raw error: it may hold URLs
// or tokens of the platform.
func classify(app string, err error) *exitFailure {
	var f *exitFailure
	if errors.As(err, &f) {
		return f
	}
	switch {
	case errors.Is(err, oneoff.ErrAppNotFound):
		return &exitFailure{ExitAppNotFound, fmt.Sprintf("App %q was not found on the platform.", app), err}
	case errors.Is(err, oneoff.ErrQuota):
		return &exitFailure{ExitQuota, fmt.Sprintf("The platform refused to start another one-off container for %s (quota or rate limit); try again later.", app), err}
	case errors.Is(err, oneoff.ErrInvalid):
		return &exitFailure{ExitRequestRefused, "The platform refused the run request as invalid.", err}
	case errors.Is(err, oneoff.ErrOperationFailed):
		msg := "The one-off container failed to start."
		var apiErr *oneoff.APIError
		if errors.As(err, &apiErr) && apiErr.Message != "" {
			msg = fmt.Sprintf("The one-off container failed to start: %s", oneLine(apiErr.Message))
		}
		return &exitFailure{ExitStartFailed, msg, err}
	case errors.Is(err, oneoff.ErrStartTimeout):
		return &exitFailure{ExitStartFailed, "The one-off container did not start in time.", err}
	case errors.Is(err, oneoff.ErrInactivity):
		return &exitFailure{ExitInactivity, "The platform stopped the one-off container after a period of inactivity.", err}
	case errors.Is(err, oneoff.ErrUnauthorized):
		return &exitFailure{ExitPlatformDown, "The bridge could not authenticate to the platform; tell its operator.", err}
	case errors.Is(err, oneoff.ErrUnreachable), errors.Is(err, oneoff.ErrMalformed), errors.Is(err, oneoff.ErrAttachRefused):
		return &exitFailure{ExitPlatformDown, "The platform is unavailable; try again later.", err}
	}
	return &exitFailure{ExitInternal, "The bridge failed to run the session; the cause is in its log.", err}
}

// invalidAppNameMessage tells the user what an app name may contain. The
// name is quoted with Go's escapes, so that control characters in it cannot
// paint the terminal, and cut after twice the longest app name.
func invalidAppNameMessage(name string) string {
	shown := fmt.Sprintf("%q", name)
	if len(name) > 2*appname.MaxLen {
		shown = fmt.Sprintf("%q…", name[:2*appname.MaxLen])
	}
	return fmt.Sprintf("%s is not a valid app name: app names are %s.", shown, appname.Rule)
}

// oneLine keeps a platform's message to one printable line of bounded size,
// so that a hostile or broken answer cannot paint the user's terminal.
func oneLine(s string) string {
	const max = 200
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if len(out) == max {
			out = append(out, '…')
			break
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

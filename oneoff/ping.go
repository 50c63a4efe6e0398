package oneoff

import "context"

// Ping asks the platform whether it answers: a bearer token (from the
// cache, else the token exchange of PROTOCOL.md section 5), then
// `GET {auth}/v1/users/self` with it (PROTOCOL.md section 6, step 2), a
// read that changes nothing. nil on a 2xx answer; otherwise an error of
// the kinds of errors.go (ErrUnreachable, ErrUnauthorized, ...). A 401
// drops the cached token, so that the next call exchanges again.
func (c *Client) Ping(ctx context.Context) error {
	const op = "ping"
	tok, err := c.bearer(ctx)
	if err != nil {
		return err
	}
	a, err := c.send(ctx, request{
		op:      op,
		svc:     svcAuth,
		method:  "GET",
		url:     c.auth.String() + "/v1/users/self",
		auth:    bearerAuth(tok),
		timeout: requestTimeout,
	})
	if err != nil {
		return err
	}
	if !a.ok() {
		if a.status == 401 {
			c.tokens.forget(tok)
		}
		return apiErrorOf(op, svcAuth, a)
	}
	return nil
}

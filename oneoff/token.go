package oneoff

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// refreshMargin: a bearer token with less life than this is exchanged again
// (what Scalingo's clients do).
const refreshMargin = 5 * time.Minute

// tokenCache holds the current bearer token. One exchange at a time: sem is
// a one-slot semaphore, so that waiting for it respects ctx.
type tokenCache struct {
	sem chan struct{}
	mu  sync.Mutex
	tok string
	exp time.Time
}

func newTokenCache() tokenCache {
	return tokenCache{sem: make(chan struct{}, 1)}
}

func (t *tokenCache) fresh(now time.Time) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != "" && t.exp.Sub(now) >= refreshMargin {
		return t.tok, true
	}
	return "", false
}

func (t *tokenCache) store(tok string, exp time.Time) {
	t.mu.Lock()
	t.tok, t.exp = tok, exp
	t.mu.Unlock()
}

// forget drops tok if it is still the cached one (it was refused).
func (t *tokenCache) forget(tok string) {
	t.mu.Lock()
	if t.tok == tok {
		t.tok, t.exp = "", time.Time{}
	}
	t.mu.Unlock()
}

// bearer returns a bearer token with at least refreshMargin of life left if
// the platform issues such, exchanging the API token when needed.
func (c *Client) bearer(ctx context.Context) (string, error) {
	tok, _, err := c.bearerCached(ctx)
	return tok, err
}

// bearerCached is bearer, and says whether the token came from the cache
// (and so may have been revoked since, e.g. by a platform restart).
func (c *Client) bearerCached(ctx context.Context) (string, bool, error) {
	if tok, ok := c.tokens.fresh(c.now()); ok {
		return tok, true, nil
	}
	select {
	case c.tokens.sem <- struct{}{}:
	case <-ctx.Done():
		return "", false, fmt.Errorf("token exchange: %w", context.Cause(ctx))
	}
	defer func() { <-c.tokens.sem }()
	// Another caller may have exchanged while this one waited.
	if tok, ok := c.tokens.fresh(c.now()); ok {
		return tok, true, nil
	}
	tok, exp, err := c.exchange(ctx)
	if err != nil {
		return "", false, err
	}
	c.tokens.store(tok, exp)
	return tok, false, nil
}

// exchange trades the API token for a bearer JWT.
func (c *Client) exchange(ctx context.Context) (string, time.Time, error) {
	const op = "token exchange"
	a, err := c.send(ctx, request{
		op:          op,
		svc:         svcAuth,
		method:      "POST",
		url:         c.auth.String() + "/v1/tokens/exchange",
		auth:        basicAuth(c.apiToken),
		contentType: "application/json",
		body:        strings.NewReader("{}"),
		length:      2,
		timeout:     requestTimeout,
	})
	if err != nil {
		return "", time.Time{}, err
	}
	if !a.ok() {
		return "", time.Time{}, apiErrorOf(op, svcAuth, a)
	}
	if a.oversized {
		return "", time.Time{}, malformed(op, a.status, "answer over 1 MiB", nil)
	}
	tok, exp, err := decodeTokenAnswer(a.body)
	if err != nil {
		return "", time.Time{}, malformed(op, a.status, "", err)
	}
	return tok, exp, nil
}

// decodeTokenAnswer reads {"token": "<JWT>"} and the JWT's expiry.
func decodeTokenAnswer(body []byte) (string, time.Time, error) {
	var m struct {
		Token json.RawMessage `json:"token"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "", time.Time{}, fmt.Errorf("token answer: %w", err)
	}
	tok, ok := jsonString(m.Token)
	if !ok || tok == "" {
		return "", time.Time{}, fmt.Errorf("token answer: no token")
	}
	// The token goes into HTTP headers.
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return "", time.Time{}, fmt.Errorf("token answer: token has a byte outside visible ASCII")
		}
	}
	exp, err := jwtExpiry(tok)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token answer: %w", err)
	}
	return tok, exp, nil
}

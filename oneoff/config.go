package oneoff

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config says where the one-off API is and how to reach it.
type Config struct {
	APIURL       string        // regional API base, e.g. "http://127.0.0.1:41234" (no trailing /v1)
	AuthURL      string        // token exchange base; "" means APIURL
	APIToken     string        // exchanged at POST {AuthURL}/v1/tokens/exchange for a JWT bearer
	HTTP         *http.Client  // nil: a client with sane timeouts (no overall timeout: attach streams are long)
	StartTimeout time.Duration // deadline for a one-off to be ready, the wait for a free slot (429) included (the bridge's --start-timeout); 0 => DefaultStartTimeout
	Logger       *slog.Logger  // nil => discard
}

const (
	// DefaultStartTimeout is the zero value of Config.StartTimeout.
	DefaultStartTimeout = 2 * time.Minute
	// requestTimeout bounds each small JSON call (token, run, poll, resize);
	// uploads, attach streams and /wait are bounded by the caller's ctx only.
	requestTimeout = 30 * time.Second
	dialTimeout    = 10 * time.Second
	// maxAnswerBytes caps any answer body read into memory.
	maxAnswerBytes = 1 << 20
)

// Validate reports the first thing wrong with the configuration.
func (c Config) Validate() error {
	if _, err := parseBase(c.APIURL); err != nil {
		return fmt.Errorf("api url: %w", err)
	}
	if c.AuthURL != "" {
		if _, err := parseBase(c.AuthURL); err != nil {
			return fmt.Errorf("auth url: %w", err)
		}
	}
	if c.APIToken == "" {
		return errors.New("api token is required")
	}
	if c.StartTimeout < 0 {
		return errors.New("poll timeout must not be negative")
	}
	return nil
}

// parseBase parses an API base URL: http or https, a host, no query.
func parseBase(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	u.User = nil
	return u, nil
}

// Client talks to one regional API. It is safe for concurrent use.
type Client struct {
	api          *url.URL
	auth         *url.URL
	apiToken     string
	http         *http.Client
	dialer       *net.Dialer
	tls          *tls.Config // base TLS config for attach dials; nil => defaults
	startTimeout time.Duration
	log          *slog.Logger
	tokens       tokenCache
	now          func() time.Time
}

// New checks cfg and returns a client. It makes no network call: the token
// is exchanged on first use.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("one-off client config: %w", err)
	}
	api, _ := parseBase(cfg.APIURL)
	auth := api
	if cfg.AuthURL != "" {
		auth, _ = parseBase(cfg.AuthURL)
	}
	c := &Client{
		api:          api,
		auth:         auth,
		apiToken:     cfg.APIToken,
		http:         cfg.HTTP,
		dialer:       &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		startTimeout: cfg.StartTimeout,
		log:          cfg.Logger,
		tokens:       newTokenCache(),
		now:          time.Now,
	}
	if c.startTimeout == 0 {
		c.startTimeout = DefaultStartTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = defaultHTTPClient(c.dialer)
	}
	// Attach dials by hand: reuse the TLS settings (e.g. private CAs) of
	// the caller's transport when it has some.
	if t, ok := c.http.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		c.tls = t.TLSClientConfig.Clone()
	}
	return c, nil
}

func defaultHTTPClient(d *net.Dialer) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return bulkWriteConn{conn}, nil
			},
			TLSHandshakeTimeout:   dialTimeout,
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// bodyCopyBuffer is the size of the writes a request body is sent in.
const bodyCopyBuffer = 256 << 10

// bulkWriteConn sends request bodies in large writes. net/http copies a
// body of known length into the connection through io.Copy, 32 KiB per
// write(2); an upload of a large file then costs a system call every 32 KiB,
// and on loopback the calls, not the bytes, set the pace. Other traffic
// (headers, small bodies, TLS records) goes through Write as before.
type bulkWriteConn struct{ net.Conn }

func (c bulkWriteConn) ReadFrom(r io.Reader) (int64, error) {
	if n, handled, err := sendBody(c.Conn, r); handled {
		return n, err
	}
	return io.CopyBuffer(struct{ io.Writer }{c.Conn}, r, make([]byte, bodyCopyBuffer))
}

// CloseIdleConnections closes kept-alive connections to the API, e.g. at
// shutdown.
func (c *Client) CloseIdleConnections() {
	c.http.CloseIdleConnections()
}

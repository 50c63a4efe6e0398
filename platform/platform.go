package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Platform is the embedded platform: an HTTP server of the one-off API that
// runs each one-off as a local process tree.
type Platform struct {
	cfg      Config
	log      *slog.Logger
	tokens   *tokenSigner
	runner   *runner
	stateDir string
	state    *oneOffDirs
	started  time.Time
	srv      *http.Server
	mux      *http.ServeMux

	// hookAfterStart, when set (by tests only), runs between the start of a
	// one-off's process and the answer to its attach.
	hookAfterStart func(*process)

	mu       sync.Mutex
	url      string
	closed   bool
	byToken  map[string]*oneOff // attach token => one-off
	byOp     map[string]*oneOff // operation id => one-off
	mapsPeak int                // most entries byToken held since the maps were made (forget)
	alive    map[string]int     // app => one-offs not yet ended
	total    int                // one-offs not yet ended, in all
	indexes  map[string]int     // app => last type_index given
	sessions sync.WaitGroup     // attach streams and their one-offs' ends
	removals sync.WaitGroup     // one-off dirs being removed (removeDirLater)
}

// New checks cfg and prepares a platform; Serve starts it.
func New(cfg Config) (*Platform, error) {
	if _, ok := os.LookupEnv(initEnvVar); ok {
		// Started as a one-off's init, yet here: main skipped
		// RunInitIfRequested. Refuse rather than start inits of inits.
		return nil, errors.New("new platform: this process is a one-off init: main must call platform.RunInitIfRequested first")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tokens, err := newTokenSigner(cfg.TokenTTL)
	if err != nil {
		return nil, fmt.Errorf("new platform: %w", err)
	}
	p := &Platform{
		cfg:     cfg,
		log:     cfg.Logger,
		tokens:  tokens,
		started: time.Now(),
		byToken: map[string]*oneOff{},
		byOp:    map[string]*oneOff{},
		alive:   map[string]int{},
		indexes: map[string]int{},
	}
	// What the host allows first: a refusal leaves no state dir behind.
	p.runner, err = newRunner(cfg, p.log)
	if errors.Is(err, ErrNoIsolation) {
		return nil, err // a sentence of its own, for the caller to complete
	}
	if err != nil {
		return nil, fmt.Errorf("new platform: %w", err)
	}
	p.stateDir = cfg.StateDir
	if p.stateDir == "" {
		if p.stateDir, err = defaultStateDir(); err != nil {
			return nil, fmt.Errorf("new platform: state dir: %w", err)
		}
	}
	if p.state, err = openStateDir(p.stateDir); err != nil {
		return nil, fmt.Errorf("new platform: state dir: %w", err)
	}
	// What platforms that died left: their one-offs are gone with them.
	switch n, err := p.state.sweep(); {
	case err != nil:
		p.log.Warn("remove what stopped platforms left in the state dir", "dir", p.stateDir, "removed", n, "err", err)
	case n > 0:
		p.log.Info("removed what stopped platforms left in the state dir", "dir", p.stateDir, "one_off_dirs", n)
	}
	if err := p.runner.prove(cfg, p.stateDir); err != nil {
		p.state.close()
		if errors.Is(err, ErrNoIsolation) {
			return nil, err
		}
		return nil, fmt.Errorf("new platform: %w", err)
	}
	p.mux = p.routes()
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// Serve answers on l until Shutdown; it returns http.ErrServerClosed then.
func (p *Platform) Serve(l net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return http.ErrServerClosed
	}
	if p.url == "" {
		p.url = p.cfg.PublicURL
		if p.url == "" {
			p.url = "http://" + reachableAddr(l.Addr())
		}
	}
	p.mu.Unlock()
	network := "own"
	if !p.OwnNetwork() {
		network = "host"
	}
	p.log.Info("platform serving", "url", p.URL(), "isolation", p.runner.isolation.String(), "network", network, "pipe_mode", !p.cfg.NoPipeMode)
	return p.srv.Serve(l)
}

// reachableAddr turns a wildcard listen address into a loopback one that
// clients on this host can dial.
func reachableAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// Isolated reports whether one-offs run isolated: in their own PID and
// mount namespaces, as another user (root) or without capabilities in a
// user namespace, with Config.Protect and the state dir hidden. False:
// they run as the platform's own user and can reach what it can.
func (p *Platform) Isolated() bool { return p.runner.isolation != isolationNone }

// OwnNetwork reports whether every one-off gets a network namespace of its
// own, with only a loopback interface, up: 127.0.0.1 inside a one-off is
// then that one-off's alone, and nothing on the host's loopback (this
// platform's API included) nor on another host can be reached from it.
// False with Config.HostNetwork, without isolation (see Isolated), and
// where the host lets no network namespace be made (New then logs a
// warning): one-offs then share the host's network.
func (p *Platform) OwnNetwork() bool { return p.runner.plan.OwnNetwork }

// URL is the base URL of the API, like "http://127.0.0.1:PORT", once serving.
func (p *Platform) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// Shutdown stops accepting, kills every one-off, waits for their ends and
// removes their directories (also of those that did not end in time).
func (p *Platform) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	all := make([]*oneOff, 0, len(p.byToken))
	for _, o := range p.byToken {
		all = append(all, o)
	}
	p.mu.Unlock()
	// One-offs first: a /wait in flight ends only when its one-off does,
	// and the HTTP server waits for requests in flight.
	for _, o := range all {
		o.end(endShutdown)
	}
	err := p.srv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { p.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("platform shutdown: %w", ctx.Err()))
	}
	p.mu.Lock()
	for _, o := range p.byToken {
		o.stopTimers()
	}
	p.mu.Unlock()
	p.runner.close()
	for _, o := range all {
		o.removeDir()
	}
	p.removals.Wait()
	p.state.close()
	return err
}

// ServeHTTP sends /v1/ to the API and every other path to the attach service,
// whose URLs are /<token>[/files|/wait] (CONNECT does not suit ServeMux).
func (p *Platform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		p.mux.ServeHTTP(w, r)
		return
	}
	p.serveAttachService(w, r)
}

func (p *Platform) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/tokens/exchange", p.handleTokenExchange)
	m.HandleFunc("GET /v1/users/self", p.requireBearer(p.handleUserSelf))
	m.HandleFunc("GET /v1/regions", p.requireBearer(p.handleRegions))
	m.HandleFunc("GET /v1/apps/{app}", p.requireBearer(p.requireApp(p.handleApp)))
	m.HandleFunc("POST /v1/apps/{app}/run", p.requireBearer(p.requireApp(p.handleRun)))
	m.HandleFunc("GET /v1/apps/{app}/operations/{op}", p.requireBearer(p.requireApp(p.handleOperation)))
	m.HandleFunc("GET /v1/operations/{op}", p.requireBearer(p.handleOperation))
	m.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return m
}

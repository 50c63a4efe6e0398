package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	gossh "golang.org/x/crypto/ssh"

	"sshbridge/agent"
	"sshbridge/auth"
	"sshbridge/bridge"
	"sshbridge/oneoff"
	"sshbridge/platform"
	"sshbridge/proxyprotocol"
	"sshbridge/staging"
)

// serveBridge wires the parts in order: the listener first (so that a
// busy address fails before anything starts), the API token, access
// control, the platform (embedded unless an API URL is set), host key, the
// one-off client, the staging area, then the SSH server; and takes them
// down in reverse.
func serveBridge(ctx context.Context, cfg *bridgeFlags, log *slog.Logger) error {
	// What runs first when the bridge begins to drain (restart.go).
	var drain drainHooks
	// SIGHUP hands over to a new process; one that comes while starting
	// waits for the bridge to serve.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	binary := installedBinary()
	ready := handoverReady()
	inherited, err := inheritedListeners()
	if err != nil {
		return err
	}
	ln := inherited["ssh"]
	if ln != nil {
		log.Info("serving the listening socket passed by LISTEN_FDS: --listen is not used", "addr", ln.Addr().String())
	} else if ln, err = listen(cfg.listen, listenFlag, listenEnv); err != nil {
		return err
	}
	defer ln.Close()
	// The socket itself, which a handover passes on.
	sshSocket := ln
	if len(cfg.proxyFrom) > 0 {
		// Behind a load balancer: each connection's client address comes
		// from its PROXY protocol header (bridge reads it first).
		ln = proxyprotocol.NewListener(ln, proxyprotocol.Config{
			From:              cfg.proxyFrom,
			ReadHeaderTimeout: min(proxyprotocol.DefaultReadHeaderTimeout, cfg.bridge.LoginGraceTime),
			Logger:            log,
		})
		log.Info("PROXY protocol: a header is required from these addresses and refused from others", "from", strings.Join(cfg.proxyProtocolFrom, ","))
	}
	apiURL, authURL := cfg.apiURL, cfg.authURL
	apiToken, err := readAPIToken(cfg)
	if err != nil {
		return err
	}
	// Who may connect, and whether one-offs can be kept from the bridge's
	// files, before the host key: a bridge that cannot start leaves
	// nothing behind.
	authority, ownKeys, err := newAuthority(ctx, cfg, log)
	if err != nil {
		return err
	}
	if len(cfg.bridge.RecordApps) > 0 {
		if err := os.MkdirAll(cfg.bridge.RecordDir, 0o700); err != nil {
			return fmt.Errorf("%s: %w", cfg.setting("record-dir"), err)
		}
	}
	var embedded *embeddedPlatform
	if apiURL == "" {
		embedded, err = startEmbeddedPlatform(cfg, ownKeys, log)
		if err != nil {
			return err
		}
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			embedded.Shutdown(shutdownCtx)
		}()
		apiURL, authURL, apiToken = embedded.url, "", embedded.token
	}
	hostKey, err := loadHostKey(cfg)
	if err != nil {
		return err
	}
	hostCerts, err := auth.LoadHostCertificates(cfg.hostCertificates, []gossh.Signer{hostKey}, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.setting("host-certificate"), err)
	}
	var certSigners []gossh.Signer
	for _, c := range hostCerts {
		log.Info("presenting a host certificate", "file", c.File, "key_id", c.Cert.KeyId, "serial", c.Cert.Serial,
			"principals", c.Principals(), "ca", gossh.FingerprintSHA256(c.Cert.SignatureKey), "valid_until", c.ValidUntil())
		certSigners = append(certSigners, c.Signer)
	}
	client, err := oneoff.New(oneoff.Config{
		APIURL:       apiURL,
		AuthURL:      authURL,
		APIToken:     apiToken,
		StartTimeout: cfg.startTimeout,
		Logger:       log.With("component", "oneoff"),
	})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()

	var area *staging.Area
	if ready != nil {
		area = newStagingAfterHandover(ctx, cfg, log)
	} else if area, err = newStaging(cfg, log); err != nil {
		return err
	}
	defer area.Close()
	ops, err := startOperations(cfg, log, client, area, inherited)
	if err != nil {
		return err
	}
	defer ops.Close()
	// Readiness fails first when a drain begins: balancers stop sending
	// connections.
	drain.add(ops.SetDraining)

	connAgent, err := connectionAgent(cfg, embedded, log)
	if err != nil {
		return err
	}
	srv, err := bridge.New(cfg.bridge, bridge.Deps{
		Agent:            connAgent,
		Platform:         bridge.ClientPlatform(client),
		Auth:             authority,
		HostKey:          hostKey,
		HostCertificates: certSigners,
		Subsystems:       area.Subsystems(),
		Interceptors:     area.Interceptors(),
		Deliverer:        area,
		Logger:           log,
		Observer:         ops.Observer,
	})
	if err != nil {
		return err
	}
	if err := writeAddressFile(cfg.listenAddressFile, ln.Addr()); err != nil {
		return fmt.Errorf("%s: %w", cfg.setting("listen-address-file"), err)
	}
	log.Info("bridge listening", "addr", ln.Addr().String(), "platform", apiURL,
		"host_key", gossh.FingerprintSHA256(hostKey.PublicKey()), "pid", os.Getpid())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	signalReady(ready, log)
	for done := false; !done; {
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
			done = true
		case <-hup:
			if os.Getpid() == 1 {
				// Its exit would end every process of the container.
				log.Error("handover refused: this process is its PID namespace's init (a container's main process), whose exit would end the new one too; restart the container instead")
				continue
			}
			log.Info("handover: starting a new process", "binary", binary)
			// Every listener of the bridge goes on to the new process,
			// named as inheritedListeners takes them back.
			if _, err := startSuccessor(ctx, binary, append([]namedListener{{"ssh", sshSocket}}, ops.listeners()...), log); err != nil {
				log.Error("handover failed: this process keeps serving", "err", err)
				continue
			}
			drain.run()
			// The new process serves the operations listener now.
			ops.stopServing()
			return drainAfterHandover(ctx, cfg, srv, area, log)
		}
	}
	drain.run()
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("shutting down: waiting for open sessions", "grace", cfg.shutdownGrace)
	// Live sessions get a bounded time to finish; then their connections
	// are closed, which ends their one-offs.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	log.Info("bridge stopped")
	return nil
}

// listen binds addr; its error names the setting that changes the address.
func listen(addr, flagName, envName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	cause := err
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		cause = sysErr.Err
	}
	hint := fmt.Sprintf("set %s or %s to another address", flagName, envName)
	if errors.Is(err, syscall.EACCES) {
		hint = fmt.Sprintf("ports below 1024 need root or CAP_NET_BIND_SERVICE; or set %s or %s to another address", flagName, envName)
	}
	return nil, fmt.Errorf("cannot listen on %s: %v; %s", addr, cause, hint)
}

// writeAddressFile writes addr (host:port and a newline) to path so that
// whoever started the process with port 0 learns the port without reading
// the log. The file is written beside path under a temporary name and
// renamed over it, so a reader sees no file or the whole line, never part
// of it. An empty path writes nothing. The file is left in place on exit.
func writeAddressFile(path string, addr net.Addr) error {
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(addr.String() + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func loadHostKey(cfg *bridgeFlags) (gossh.Signer, error) {
	if cfg.hostKey != "" {
		return auth.LoadHostKey(cfg.hostKey)
	}
	return auth.EnsureHostKey(cfg.dataDir)
}

// embeddedPlatform is the platform the bridge runs in-process when no API
// URL is given. The bridge reaches it over loopback HTTP like any PaaS.
type embeddedPlatform struct {
	*platform.Platform
	url, token string
}

// startEmbeddedPlatform starts the platform with the bridge's files
// hidden from its one-offs: the data dir (host key, staging area, the
// one-offs' own dirs) and every key file. ownKeys are the default key
// files of the user running the bridge, nil when key files were named:
// only then may one-offs run unisolated, as that user, who can reach those
// files anyway; otherwise a host where one-offs cannot be isolated is
// refused.
func startEmbeddedPlatform(cfg *bridgeFlags, ownKeys []string, log *slog.Logger) (*embeddedPlatform, error) {
	protect := []string{cfg.dataDir}
	if len(cfg.bridge.RecordApps) > 0 {
		protect = append(protect, cfg.bridge.RecordDir)
	}
	for _, f := range []string{cfg.hostKey, cfg.authorizedKeys, cfg.trustedUserCAKeys, cfg.revoked, cfg.apiTokenFile} {
		if f != "" {
			protect = append(protect, f)
		}
	}
	for _, f := range ownKeys {
		// Their directory whole: ~/.ssh holds the user's private keys too.
		if d := filepath.Dir(f); !slices.Contains(protect, d) {
			protect = append(protect, d)
		}
	}
	token := randomToken()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded platform: %w", err)
	}
	url := "http://" + ln.Addr().String()
	p, err := platform.New(platform.Config{
		APIToken:          token,
		PublicURL:         url,
		AppQuota:          cfg.platformAppQuota,
		TotalQuota:        cfg.platformTotalQuota,
		InactivityTimeout: cfg.platformInactivity,
		HostNetwork:       cfg.oneOffHostNetwork,
		NoPipeMode:        cfg.noPipeMode,
		StateDir:          filepath.Join(cfg.dataDir, "platform"),
		Protect:           protect,
		RequireIsolation:  ownKeys == nil,
		Logger:            log.With("component", "platform"),
		// The platform takes every file the bridge stages: otherwise, under a
		// raised --upload-max-file-size, a file staged would be refused at
		// delivery (413) and hold up every file pending after it.
		MaxUploadBytes: cfg.uploadMaxFile,
	})
	if errors.Is(err, platform.ErrNoIsolation) {
		ln.Close()
		return nil, fmt.Errorf("%v; one-offs would run as this user (uid %d) and could read the host key and the staging area in %s and rewrite the key files, taking over the bridge; run the bridge as root, or set --api-url or ONEOFF_API_URL to run one-offs on a PaaS",
			err, os.Geteuid(), cfg.dataDir)
	}
	if err != nil {
		ln.Close()
		return nil, err
	}
	if !p.Isolated() {
		log.Warn("one-offs are not isolated: they run as this user and can read and write what it can, the data dir and key files included; allowed because only this user's own keys are accepted (no --authorized-keys or --trusted-user-ca-keys)")
	}
	go p.Serve(ln)
	return &embeddedPlatform{Platform: p, url: url, token: token}, nil
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return "tk-embedded-" + hex.EncodeToString(b[:])
}

// newAuthority loads who may connect. With no key source named it takes
// the keys of the user running the bridge, so that a developer's own `ssh`
// works at once, and returns their files; with no key at all it refuses to
// start.
func newAuthority(ctx context.Context, cfg *bridgeFlags, log *slog.Logger) (*auth.Authority, []string, error) {
	var ownKeys []string
	ac := auth.Config{
		AuthorizedKeysFile:    cfg.authorizedKeys,
		TrustedUserCAKeysFile: cfg.trustedUserCAKeys,
		RevokedKeysFile:       cfg.revoked,
		Logger:                log.With("component", "auth"),
	}
	if ac.AuthorizedKeysFile == "" && ac.TrustedUserCAKeysFile == "" {
		files, err := auth.DefaultAuthorizedKeys()
		if err != nil {
			return nil, nil, err
		}
		ac.AuthorizedKeysFiles, ownKeys = files, files
		log.Info("no --authorized-keys given: accepting the keys of the user running the bridge", "files", strings.Join(files, ","))
	}
	for _, f := range []struct{ name, file, holds string }{
		{"authorized-keys", cfg.authorizedKeys, "the public keys that may connect, one a line as in ~/.ssh/authorized_keys"},
		{"trusted-user-ca-keys", cfg.trustedUserCAKeys, "the CA public keys whose user certificates are accepted, one a line"},
		{"revoked-keys", cfg.revoked, "an OpenSSH KRL (ssh-keygen -k) or revoked public keys, one a line"},
	} {
		if err := keyFileUsable(cfg, f.name, f.file, f.holds); err != nil {
			return nil, nil, err
		}
	}
	a, err := auth.New(ac)
	if err != nil {
		return nil, nil, err
	}
	go a.Watch(ctx)
	return a, ownKeys, nil
}

// keyFileUsable turns a missing key file, or a directory in its place,
// into a sentence that says what the file must hold and which setting
// names it; a container with nothing mounted at the configured path is the
// usual case.
func keyFileUsable(cfg *bridgeFlags, name, file, holds string) error {
	if file == "" {
		return nil
	}
	setting := cfg.setting(name)
	st, err := os.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: no such file: create it with %s (in a container, mount it there), or set %s to your file",
			setting, file, holds, setting)
	case err == nil && st.IsDir():
		return fmt.Errorf("%s %s: is a directory: name the file in it that holds %s", setting, file, holds)
	}
	return nil
}

// agentBinaries finds the agents (agent.FindBinaries). explicit says
// whether --agent-dir was given; a directory given that does not exist is
// an error, not the bridge's own binary alone.
func agentBinaries(cfg *bridgeFlags) (bins map[string]string, explicit bool, err error) {
	if f := cfg.flags.Lookup("agent-dir"); f != nil && f.IsSet() {
		explicit = true
		fi, err := os.Stat(cfg.agentDir)
		if err != nil {
			return nil, true, fmt.Errorf("agent binaries: %w", err)
		}
		if !fi.IsDir() {
			return nil, true, fmt.Errorf("agent binaries: %s is not a directory", cfg.agentDir)
		}
	}
	bins, err = agent.FindBinaries(cfg.agentDir)
	return bins, explicit, err
}

// connectionAgent finds the agents connection mode uploads (--agent-dir,
// else the bridge's own binary for its own architecture). The embedded
// platform runs one-offs on this machine, so only this machine's
// architecture is sent there. Without any agent, connection mode is off
// and says so to whoever asks for it; an --agent-dir given but unusable
// stops the start.
func connectionAgent(cfg *bridgeFlags, embedded *embeddedPlatform, log *slog.Logger) (*bridge.Agent, error) {
	bins, explicit, err := agentBinaries(cfg)
	if err != nil {
		if explicit {
			return nil, fmt.Errorf("%s: %w", cfg.setting("agent-dir"), err)
		}
		log.Warn("connection mode is off: no agent for the one-offs", "err", err)
		return nil, nil
	}
	a := &bridge.Agent{Files: map[string]string{}, Command: agent.LaunchCommand()}
	for arch, path := range bins {
		if embedded != nil && arch != runtime.GOARCH {
			continue
		}
		a.Files[agent.UploadName(arch)] = path
	}
	if embedded != nil && !embedded.OwnNetwork() && !cfg.oneOffHostNetwork {
		a.ForwardingRefusal = "forwarding is off on this bridge: its one-offs share the host's network (no network namespace can be made here), so their loopback is not their own"
	}
	log.Debug("connection mode agents", "files", a.Files)
	return a, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sshbridge/platform"
)

// runPlatform is `bridge platform`: the embedded platform alone, for other
// clients.
func runPlatform(args []string, stdout, stderr io.Writer) int {
	cfg, err := parsePlatformFlags(args, stderr)
	if err != nil {
		return usageError(err, stdout, stderr, writePlatformUsage)
	}
	ln, err := listen(cfg.listen, "--listen", "PLATFORM_LISTEN")
	if err != nil {
		fmt.Fprintf(stderr, "bridge platform: %v\n", err)
		return exitError
	}
	defer ln.Close()
	log := cfg.log
	p, err := platform.New(cfg.platform)
	if err != nil {
		fmt.Fprintf(stderr, "bridge platform: %v\n", err)
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	code := exitOK
	if err := writeAddressFile(cfg.listenAddressFile, ln.Addr()); err != nil {
		fmt.Fprintf(stderr, "bridge platform: --listen-address-file %s: %v\n", cfg.listenAddressFile, err)
		code = exitError
	} else {
		log.Info("platform listening", "url", "http://"+ln.Addr().String())
		select {
		case err := <-served:
			fmt.Fprintf(stderr, "bridge platform: %v\n", err)
			return exitError
		case <-ctx.Done():
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Shutdown(shutdownCtx)
	return code
}

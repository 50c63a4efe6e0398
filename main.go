// Command bridge is an SSH server in front of a PaaS's one-off containers:
// `ssh app@bridge` opens a shell in a new one-off container of app, `ssh
// app@bridge cmd` runs one command there, and scp/sftp uploads land in
// /tmp/uploads of the app's next one-off.
//
// Usage:
//
//	bridge [flags]                   run the SSH bridge
//	bridge platform [flags]          run the embedded platform alone
//	bridge healthcheck [flags]       check that a running bridge answers
//	bridge version                   print the version
//	bridge check [flags]             check the configuration, start nothing
//
// Every flag can also be set by the environment variable named in --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	// Public CA roots for HTTPS to a PaaS when the system has none (a slim
	// or scratch container image): used only when the system pool is empty.
	_ "golang.org/x/crypto/x509roots/fallback"

	"sshbridge/agent"
	"sshbridge/cli"
	"sshbridge/platform"
)

func main() {
	// A one-off's init process is this binary started again by the
	// embedded platform; it never returns from here.
	platform.RunInitIfRequested()
	setGCPercent()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// gcPercent is the garbage collector's target (Go's GOGC) the bridge runs
// with unless the environment sets GOGC: an upload's SSH packets are
// garbage the moment they are written, and at Go's default of 100 the heap
// grows by as much again as what is live before each collection. Measured
// on a 1 GiB `sftp put` under AES-GCM (BENCHMARKS.md, "sftp put: the
// cipher"): at 75 the bridge's RSS grew by 13.1-16.9 MiB, at 60 by
// 11.3-13.6 MiB at about 6% less speed (1.25-1.59 of sftp-server's).
const gcPercent = 60

// setGCPercent applies gcPercent, leaving an operator's GOGC alone.
func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// Exit codes of the bridge process itself.
const (
	exitOK    = 0
	exitError = 1 // the bridge could not start or stopped on an error
	exitUsage = 2 // a bad flag, variable or argument
)

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "agent":
			// Internal: the connection-mode agent, what runs inside a
			// one-off (bridge agent --help).
			return agent.Main(args[1:], os.Stdin, os.Stdout, os.Stderr)
		case "platform":
			return runPlatform(args[1:], stdout, stderr)
		case "healthcheck":
			return runHealthcheck(args[1:], stdout, stderr)
		case "check":
			return runCheck(args[1:], stdout, stderr)
		case "version":
			if len(args) > 1 {
				fmt.Fprintf(stderr, "bridge version: unexpected argument %q; see bridge --help\n", args[1])
				return exitUsage
			}
			fmt.Fprintln(stdout, versionText())
			return exitOK
		case "help":
			writeBridgeUsage(stdout)
			return exitOK
		}
	}
	cfg, err := parseBridgeFlags(args)
	if err != nil {
		return usageError(err, stdout, stderr, writeBridgeUsage)
	}
	if cfg.version {
		fmt.Fprintln(stdout, versionText())
		return exitOK
	}
	if cfg.printConfig {
		writeConfig(stdout, cfg)
		return exitOK
	}
	log := newBridgeLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveBridge(ctx, cfg, log); err != nil {
		// One plain line: the cause and, where there is one, the fix.
		fmt.Fprintf(stderr, "bridge: %v\n", err)
		return exitError
	}
	return exitOK
}

// usageError answers a command line that could not be parsed: the usage
// text on stdout for a request for help, else the error's one line.
func usageError(err error, stdout, stderr io.Writer, usage func(io.Writer)) int {
	if errors.Is(err, cli.ErrHelp) {
		usage(stdout)
		return exitOK
	}
	fmt.Fprintln(stderr, err)
	return exitUsage
}

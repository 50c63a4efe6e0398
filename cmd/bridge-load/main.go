// Command bridge-load puts a bridge under load from loopback, for a
// bounded time, and says whether every session came through.
//
// Each of -sessions workers, until -duration has passed, connects
// (x/crypto/ssh), authenticates with -key, and either runs a short exec
// command, `echo TOKEN; exit K`, or, for -shell-fraction of its sessions,
// holds a shell on a terminal for a random time up to -hold, in which it
// has the shell echo a token and then exit with K; it checks the output
// and the exit status, closes, and starts again. Meanwhile each of
// -uploads uploaders puts a file of -upload-size random bytes over SFTP,
// then runs `sha256sum` on the delivered file in a one-off and compares it
// with the hash of what it sent, and starts again; each uploader uses an
// app of its own, so that its file is delivered to its own next session.
//
// The set-up time of a session runs from the dial to the first byte of
// the command's output. At the end it prints the counts, the failures by
// reason, and the set-up time's median, 99th percentile and maximum (as
// text, or one JSON object with -json); the exit status is 0 when nothing
// failed, 1 when anything did (a session still open -grace after
// -duration counts as failed), 2 for a usage error.
//
// Usage:
//
//	bridge-load -addr 127.0.0.1:2222 -key FILE -known-hosts FILE [flags]
//
// Only loopback addresses are accepted: it is a test tool, not a way to
// load someone else's server.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "bridge-load:", err)
		return 2
	}
	l, err := newLoad(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bridge-load:", err)
		return 2
	}
	// The whole run is bounded: the duration, then the grace for the
	// sessions and uploads under way.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration+cfg.grace)
	defer cancel()
	sum := l.run(ctx)
	if cfg.json {
		json.NewEncoder(stdout).Encode(sum)
	} else {
		sum.write(stdout)
	}
	if sum.Failures > 0 {
		return 1
	}
	return 0
}

// config is what the flags set.
type config struct {
	addr, keyFile, knownHosts string
	app                       string
	apps                      int
	sessions                  int
	duration, grace           time.Duration
	shellFraction             float64
	hold                      time.Duration
	ramp                      time.Duration
	stepTimeout               time.Duration
	uploads                   int
	uploadSize                int64
	json                      bool
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bridge-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "", "the bridge's address, host:port on loopback (required)")
	fs.StringVar(&c.keyFile, "key", "", "unencrypted OpenSSH private key the bridge accepts (required)")
	fs.StringVar(&c.knownHosts, "known-hosts", "", "known_hosts file with the bridge's host key (required)")
	fs.StringVar(&c.app, "app", "load", "app name (the SSH user); with -apps N, the apps APP-1 to APP-N in turn")
	fs.IntVar(&c.apps, "apps", 1, "number of apps the sessions spread over")
	fs.IntVar(&c.sessions, "sessions", 10, "concurrent sessions (workers)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "time during which workers start new sessions")
	fs.DurationVar(&c.grace, "grace", 2*time.Minute, "time after -duration for the sessions and uploads under way to end; any still open then fails")
	fs.Float64Var(&c.shellFraction, "shell-fraction", 0.3, "fraction of sessions that hold a shell on a terminal instead of running an exec command")
	fs.DurationVar(&c.hold, "hold", 3*time.Second, "longest time a shell is held (each a random time up to it)")
	fs.DurationVar(&c.ramp, "ramp", 5*time.Second, "time over which the workers' first sessions are spread")
	fs.DurationVar(&c.stepTimeout, "timeout", 2*time.Minute, "longest time for one session, from the dial to its close")
	fs.IntVar(&c.uploads, "uploads", 0, "concurrent SFTP uploaders, each on its app APP-upload-N")
	fs.Int64Var(&c.uploadSize, "upload-size", 16<<20, "bytes of each uploaded file")
	fs.BoolVar(&c.json, "json", false, "print the summary as one JSON object")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.addr == "" || c.keyFile == "" || c.knownHosts == "":
		return nil, fmt.Errorf("-addr, -key and -known-hosts are required")
	case c.sessions < 0 || c.uploads < 0 || c.sessions+c.uploads == 0:
		return nil, fmt.Errorf("want -sessions or -uploads above 0")
	case c.apps < 1:
		return nil, fmt.Errorf("-apps: want at least 1")
	case c.duration <= 0 || c.grace <= 0 || c.stepTimeout <= 0 || c.hold <= 0 || c.ramp < 0:
		return nil, fmt.Errorf("-duration, -grace, -timeout and -hold must be positive, -ramp not negative")
	case c.shellFraction < 0 || c.shellFraction > 1:
		return nil, fmt.Errorf("-shell-fraction: want 0 to 1")
	case c.uploadSize <= 0:
		return nil, fmt.Errorf("-upload-size: want a positive size")
	}
	if err := checkLoopback(c.addr); err != nil {
		return nil, err
	}
	return c, nil
}

// checkLoopback refuses an address that is not a loopback IP, or a name
// that resolves to anything else.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-addr %s: not a loopback address (%s): this tool loads only a bridge on this machine", addr, ip)
		}
	}
	return nil
}

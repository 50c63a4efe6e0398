package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// The environment the agent reads at its start. Every variable whose name
// starts with EnvPrefix is removed from the agent's own environment before
// it serves anything, so no command it runs inherits one.
const (
	// EnvPrefix starts the name of every variable meant for the agent.
	EnvPrefix = "BRIDGE_AGENT_"
	// HostKeyEnv holds the agent's host key: an OpenSSH private key in
	// PEM form ("-----BEGIN OPENSSH PRIVATE KEY-----"), unencrypted,
	// ed25519 (any type x/crypto/ssh parses is accepted). Required.
	HostKeyEnv = EnvPrefix + "HOST_KEY"
	// LogEnv names a file the agent appends its log to (one text line per
	// channel and per failure). Unset or empty: the agent logs nothing,
	// since its stdout, and on a one-off its stderr too, are the SSH
	// stream.
	LogEnv = EnvPrefix + "LOG"
	// RemoveDirEnv names the private directory the launcher copied the
	// agent into (LaunchCommand). Once running, the agent removes that
	// directory, but only when it is the directory of its own executable
	// and its name starts with "bridge-agent.", so the copy leaves no
	// trace once the agent has started. Unset: nothing is removed.
	RemoveDirEnv = EnvPrefix + "REMOVE_DIR"
)

// Exit codes of Main.
const (
	ExitOK      = 0 // the client ended the connection, or --check or --help
	ExitError   = 1 // no usable host key, log file or stream, or the SSH handshake failed
	ExitUsage   = 2 // an unknown argument
	errorPrefix = "bridge-agent: "
)

const mainUsage = `bridge-agent: the connection-mode agent, the program the bridge runs inside
a one-off container: an SSH server speaking SSH's connection protocol on its
stdin and stdout, with the bridge as its only client. It is internal: the
bridge uploads and starts it, and it is not meant to be run by hand.

Usage:
  agent            serve one SSH connection on stdin/stdout (needs ` + HostKeyEnv + `)
  agent --check    print "ok" and exit 0 (the launcher's test that a copy can run)
  agent --help     this text

Environment:
  ` + HostKeyEnv + `   the host key, an OpenSSH PEM private key (required; removed
                          from the environment of every command)
  ` + LogEnv + `        a file to append the log to (default: no log)
  $SHELL                  the shell for "shell" and "exec", when set and
                          executable; else /bin/bash when present, else /bin/sh
`

// Main is the agent's entry point, for the bridge-agent command and the
// bridge's internal "agent" subcommand; args are the arguments after the
// command (and after "agent"). It returns the process's exit code (ExitOK,
// ExitError, ExitUsage).
//
// With "--check" it prints "ok" on stdout and returns ExitOK; with
// "--help" it prints its usage. Otherwise it reads its host key from
// HostKeyEnv, removes every EnvPrefix variable from its environment, puts
// a terminal stdin (and stdout) in raw mode before writing anything (a
// PaaS without pipe mode gives a one-off a terminal, MakeRaw), and serves
// one SSH connection (Serve) on stdin and stdout until the client ends it.
// Commands run with the shell of chooseShell and the agent's environment.
//
// A failure before the SSH stream starts (a missing or bad key, an
// unopenable log file) is one line on stderr starting "bridge-agent: ".
// After that nothing is written to stdout or stderr but the SSH stream
// (a one-off's stdout and stderr are one stream); failures go to the log.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	switch {
	case len(args) == 1 && args[0] == "--check":
		fmt.Fprintln(stdout, "ok")
		return ExitOK
	case len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help"):
		io.WriteString(stdout, mainUsage)
		return ExitOK
	case len(args) > 0:
		fmt.Fprintf(stderr, "%sunexpected argument %q; see agent --help\n", errorPrefix, args[0])
		return ExitUsage
	}

	pem := os.Getenv(HostKeyEnv)
	removeDir := os.Getenv(RemoveDirEnv)
	logPath := os.Getenv(LogEnv)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix) {
			os.Unsetenv(name)
		}
	}
	if removeDir != "" {
		removeOwnCopy(removeDir)
	}
	if pem == "" {
		fmt.Fprintf(stderr, "%sno host key: %s is not set\n", errorPrefix, HostKeyEnv)
		return ExitError
	}
	key, err := ssh.ParsePrivateKey([]byte(pem))
	if err != nil {
		fmt.Fprintf(stderr, "%sbad host key in %s: %v\n", errorPrefix, HostKeyEnv, err)
		return ExitError
	}
	logger := slog.New(slog.DiscardHandler)
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "%slog file: %v\n", errorPrefix, err)
			return ExitError
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, nil))
	}

	// On a terminal, the end of the attach is a hangup: the read that
	// fails then ends the connection as an EOF does, and the agent exits
	// as when the client ends it, rather than dying of SIGHUP. A handled
	// signal goes back to its default in the commands the agent starts.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)

	// Raw before the first byte: the banner must leave as it is (no
	// output processing) and the bridge's bytes must not echo back.
	stream := &stdio{in: stdin, out: stdout}
	for _, f := range []*os.File{stdin, stdout} {
		restore, err := MakeRaw(f)
		if err != nil {
			stream.restoreTerminal()
			fmt.Fprintf(stderr, "%sterminal: %v\n", errorPrefix, err)
			return ExitError
		}
		stream.restore = append(stream.restore, restore)
	}

	cfg := Config{
		HostKey: key,
		Shell:   chooseShell(os.Getenv("SHELL")),
		Env:     os.Environ(),
		Logger:  logger,
	}
	logger.Info("agent started", "pid", os.Getpid(), "shell", cfg.Shell)
	if err := Serve(context.Background(), stream, cfg); err != nil {
		logger.Error("agent stopped", "err", err)
		return ExitError
	}
	logger.Info("connection ended by the client")
	return ExitOK
}

// chooseShell is the shell for "shell" and "exec" requests: shell (the
// agent's $SHELL) when it is an executable file, else /bin/bash when
// present, else /bin/sh.
func chooseShell(shell string) string {
	for _, p := range []string{shell, "/bin/bash"} {
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return "/bin/sh"
}

// removeOwnCopy removes dir when it is the launcher's private directory
// holding this very executable (RemoveDirEnv); Linux keeps a running
// program's file until it exits, so removing it does not stop the agent.
// Anything else is left alone.
func removeOwnCopy(dir string) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if filepath.Clean(dir) != filepath.Dir(exe) || !strings.HasPrefix(filepath.Base(dir), "bridge-agent.") {
		return
	}
	os.RemoveAll(dir)
}

// stdio is the agent's stream: reads from stdin, writes to stdout; Close
// puts back the terminal modes MakeRaw changed, then closes both.
type stdio struct {
	in, out *os.File
	restore []func() error
}

func (s *stdio) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *stdio) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *stdio) Close() error {
	s.restoreTerminal()
	s.in.Close()
	return s.out.Close()
}

func (s *stdio) restoreTerminal() {
	for i := len(s.restore) - 1; i >= 0; i-- {
		s.restore[i]()
	}
	s.restore = nil
}

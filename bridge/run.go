package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"sshbridge/appname"
	"sshbridge/oneoff"
)

// runSession runs what the client asked for and ends the channel with an exit
// status.
func (sess *session) runSession(kind, arg string) {
	start := time.Now()
	sess.began = start
	command := arg
	if kind == "shell" {
		command = sess.srv.cfg.DefaultCommand
	}
	// The command once, cut, on the first line: the lines after it name
	// the session by its connection, user and app.
	log := sess.log.With("kind", kind)
	log.Info("session start", "command", cut(command, logCommandBytes), "command_bytes", len(command))
	sess.shell = kind == "shell"
	code, err := sess.runCommand(kind, arg)
	switch {
	case err == nil:
	case sess.stoppedByBridge():
		// Whatever broke, the bridge's stop broke it.
		code = stopFailure.code
		log.Info("session ended: the bridge stopped", "exit_code", code, "err", err)
		sess.announce(stopFailure.message)
	case sess.ctx.Err() != nil:
		log.Info("session end", "duration", time.Since(start), "reason", "client gone", "err", err)
		sess.observeEnd(kind, start, -1, "client_gone")
		return
	default:
		f := classify(sess.app, err)
		code = f.code
		log.Warn("session failed", "exit_code", code, "err", err)
		sess.srv.observePlatformError(sess.ctx, err)
		sess.printLine(f.message)
	}
	log.Info("session end", "duration", time.Since(start), "exit_code", code)
	// Reported before the channel ends: once the client has its exit
	// status it may close the connection, and the session's end comes
	// before its connection's close (audit, metrics).
	sess.observeEnd(kind, start, code, sessionOutcome(code, err != nil))
	sess.finish(code)
}

// runCommand answers a shell, exec or subsystem request: the bridge's own
// checks first (app name, key, per-key cap), then a subsystem handler, an
// exec interceptor or a one-off. It returns the exit status, or an error
// that runSession turns into the user's line and exit code.
func (sess *session) runCommand(kind, arg string) (int, error) {
	// First, on the name alone: the answer must not depend on whether
	// such an app exists or whether this key may use it.
	if !appname.Valid(sess.app) {
		return 0, &exitFailure{ExitInvalidAppName, invalidAppNameMessage(sess.app), errors.New("not a valid app name")}
	}
	if sess.grant == nil || !sess.grant.Allowed {
		return 0, &exitFailure{ExitAccessDenied, fmt.Sprintf("This key may not use app %q.", sess.app), errors.New("app not allowed for this key")}
	}
	for _, msg := range sess.refused {
		sess.progress(msg)
	}
	command := arg
	env := map[string]string{}
	for k, v := range sess.env {
		env[k] = v
	}
	if sess.grant.ForceCommand != "" {
		// As OpenSSH: the forced command runs whatever was asked, and the
		// command asked for is in SSH_ORIGINAL_COMMAND.
		if kind == "exec" {
			env["SSH_ORIGINAL_COMMAND"] = arg
		}
		kind, command = "exec", sess.grant.ForceCommand
	}
	if sess.srv.connectionMode(sess.st, sess.grant, sess.app, kind, arg) {
		for k, v := range sess.grant.Env {
			env[k] = v
		}
		sess.connMode = true
		sess.observeStart(kind)
		return sess.runInAgent(kind, command, env)
	}
	blank := strings.Trim(command, " \t\n") == ""
	var answer ExecHandler
	if kind == "exec" && !blank {
		answer = sess.srv.intercept(command)
		sess.intercepted = answer != nil
	}
	sess.observeStart(kind)
	switch kind {
	case "subsystem":
		return sess.srv.serveSubsystem(sess, arg)
	case "shell":
		command = sess.srv.cfg.DefaultCommand
	case "exec":
		if blank {
			// OpenSSH's sshd runs `sh -c ''`, which exits 0 at once. The
			// platform refuses a blank command (422), and a one-off that
			// runs nothing must not take the pending uploads.
			sess.log.Info("blank command: nothing to run")
			return 0, nil
		}
		if answer != nil {
			code, err := answer(sess.ctx, sess.identity(), sess.app, sess.ch, sess.ch.Stderr())
			if sess.ctx.Err() != nil {
				return 0, context.Cause(sess.ctx)
			}
			return code, err
		}
	}
	for k, v := range sess.grant.Env {
		env[k] = v
	}
	req := oneoff.RunRequest{App: sess.app, Command: command, Env: env, Size: sess.srv.cfg.Size, TTY: sess.pty != nil}
	if sess.pty != nil {
		env["TERM"] = sess.pty.Term
	}
	release, ok := sess.srv.acquireOneOff(sess.identity())
	if !ok {
		return 0, keyLimitFailure(sess.srv.cfg.MaxOneOffsPerKey)
	}
	defer release()
	return sess.runOneOff(req)
}

// identity keys the staging area: the user's own key, which stays the same
// when a certificate is renewed.
func (sess *session) identity() string {
	return sess.grant.Fingerprint
}

// runOneOff starts a one-off, delivers the pending uploads, attaches and
// pumps bytes until the output ends, then reads the exit code.
func (sess *session) runOneOff(req oneoff.RunRequest) (int, error) {
	ctx := sess.ctx
	t0 := time.Now()
	sess.progressStart(fmt.Sprintf("Starting one-off container for %s...", sess.app))
	req.Waiting = func() {
		sess.log.Info("waiting for a free one-off slot")
		sess.progressEnd("busy")
		sess.progressStart(fmt.Sprintf("Waiting for a free one-off slot for %s...", sess.app))
	}
	o, err := sess.srv.deps.Platform.Start(ctx, req)
	if err != nil {
		sess.progressEnd("failed")
		return 0, fmt.Errorf("start one-off: %w", err)
	}
	sess.progressEnd(fmt.Sprintf("done in %s", elapsed(time.Since(t0))))
	obs := sess.srv.observer()
	obs.StartPhase(PhaseStarted, time.Since(t0))
	sess.log.Info("one-off started", "container", o.ContainerID(), "pipe_mode", o.PipeMode(), "after", time.Since(t0))

	if sess.pty != nil {
		sess.win.sendEarly(ctx, o.Resize, sess.log)
	}
	stream, committed, err := sess.deliverAndAttach(ctx, o)
	if err != nil {
		return 0, err
	}
	defer committed()
	obs.StartPhase(PhaseAttached, time.Since(t0))
	rec := sess.startRecording(req.Command)
	defer rec.close()
	attached, detach := context.WithCancel(ctx)
	defer detach()
	go func() {
		// The client going away ends the attach, which ends the one-off.
		<-attached.Done()
		stream.Close()
	}()
	if sess.pty != nil {
		go sess.win.follow(attached, rec.resize(o.Resize), sess.log)
		go sess.forwardSignals(attached, stream)
	}
	go func() {
		// io.Copy ends at the client's EOF; the one-off then gets its EOF
		// (a half-close in pipe mode, ^D on a terminal). When the output
		// ends first, closing the channel ends this copy.
		if _, err := io.Copy(stream, rec.input(sess.ch)); err == nil {
			stream.CloseWrite()
		}
	}()
	// A large buffer: each read of the attach stream is a syscall, and
	// output arrives faster than 32 KiB at a time.
	out := &firstByte{Reader: stream, fn: func() { obs.StartPhase(PhaseFirstByte, time.Since(t0)) }}
	_, copyErr := io.CopyBuffer(rec.output(sess.ch), out, make([]byte, 256<<10))
	if ctx.Err() != nil {
		if sess.stoppedByBridge() {
			sess.awaitOneOffEnd(o)
		}
		return 0, context.Cause(ctx)
	}
	if copyErr != nil {
		sess.log.Warn("output stream broke", "err", copyErr)
	}
	waitCtx, cancel := context.WithTimeout(ctx, sess.srv.cfg.WaitTimeout)
	defer cancel()
	code, err := o.Wait(waitCtx)
	if err != nil {
		if !errors.Is(err, oneoff.ErrInactivity) && errors.Is(err, context.DeadlineExceeded) {
			return 0, &exitFailure{ExitPlatformLostExit, "The command's exit code could not be read from the platform.", err}
		}
		return 0, fmt.Errorf("wait: %w", err)
	}
	return code, nil
}

// forwardSignals turns signal requests into the terminal's control bytes,
// as a user pressing the keys would: the one-off's terminal sends the signal
// to its foreground job.
func (sess *session) forwardSignals(ctx context.Context, w io.Writer) {
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-sess.signals:
			if b, ok := signalBytes[name]; ok {
				w.Write([]byte{b})
			} else {
				sess.log.Debug("signal not forwarded", "signal", name)
			}
		}
	}
}

var signalBytes = map[string]byte{"INT": 0x03, "QUIT": 0x1c, "TSTP": 0x1a}

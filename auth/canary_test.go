package auth

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestNoSecretInLogs: option values can hold secrets (a database URL in
// environment=, a token in command=). Whatever happens to the key, they
// never reach the log or an error.
func TestNoSecretInLogs(t *testing.T) {
	const canary = "canary-7f3a9b"
	dir := t.TempDir()
	k, other := newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`apps="demo-*",environment="DATABASE_URL=postgres://u:`+canary+`@db/x",command="deploy --token `+canary+`"`, k.PublicKey()))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: file, Logger: log, ReloadInterval: time.Nanosecond})

	for _, app := range []string{"demo-app", "other-app"} {
		ctx, _ := newCtx(t, app, "127.0.0.1:1")
		a.PublicKeyHandler(ctx, k.PublicKey())
		a.PublicKeyHandler(ctx, other.PublicKey())
	}
	// Broken edits whose offending text is a secret.
	var errs []string
	for i, bad := range []string{
		`environment="` + canary + `" `,
		canary + ` `,
		`command="` + canary + `,` + canary + ` `,
		`x` + canary + `="1" `,
		`x` + canary + `=1 `,
	} {
		writeFile(t, dir, "authorized_keys", bad+authLine("", k.PublicKey()))
		bump(t, file, 10+i)
		if err := a.Reload(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 5 {
		t.Fatalf("expected 5 reload errors, got %q", errs)
	}
	if _, err := New(Config{AuthorizedKeysFile: file}); err != nil {
		errs = append(errs, err.Error())
	}
	all := logs.String() + strings.Join(errs, "\n")
	if strings.Contains(all, canary) {
		t.Fatalf("secret in logs or errors:\n%s", all)
	}
	if !strings.Contains(all, "decision=accept") || !strings.Contains(all, "decision=deny-app") || !strings.Contains(all, "decision=refuse") {
		t.Fatalf("missing audit lines:\n%s", all)
	}
}

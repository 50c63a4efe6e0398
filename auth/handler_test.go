package auth

import (
	"testing"
)

// TestHandlerLastKeyWins is CVE-2024-45337 at the handler: the client
// offers key A then authenticates with key B; x/crypto calls the handler
// last with B, and the grant must be B's.
func TestHandlerLastKeyWins(t *testing.T) {
	dir := t.TempDir()
	a, b := newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys",
		authLine(`apps="prod-*",command="echo A"`, a.PublicKey())+
			authLine(`apps="prod-*",environment="WHO=b"`, b.PublicKey()))
	auth, _ := newAuthority(t, Config{AuthorizedKeysFile: file})
	ctx, _ := newCtx(t, "prod-app", "192.0.2.1:4000")

	if !auth.PublicKeyHandler(ctx, a.PublicKey()) {
		t.Fatal("key A refused")
	}
	if !auth.PublicKeyHandler(ctx, b.PublicKey()) {
		t.Fatal("key B refused")
	}
	g, ok := GrantFrom(ctx)
	if !ok {
		t.Fatal("no grant")
	}
	if g.ForceCommand != "" || g.Env["WHO"] != "b" || !g.Allowed {
		t.Fatalf("grant is not B's: %+v", g)
	}

	// A refused key clears the grant: nothing from an earlier key survives.
	if auth.PublicKeyHandler(ctx, newKey(t).PublicKey()) {
		t.Fatal("unknown key accepted")
	}
	if _, ok := GrantFrom(ctx); ok {
		t.Fatal("grant left after a refused key")
	}
}

func TestHandlerAppDenied(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine(`apps="demo-*"`, k.PublicKey()))
	auth, logs := newAuthority(t, Config{AuthorizedKeysFile: file})

	ctx, _ := newCtx(t, "demo-app", "127.0.0.1:5000")
	if !auth.PublicKeyHandler(ctx, k.PublicKey()) {
		t.Fatal("refused")
	}
	if g, _ := GrantFrom(ctx); !g.Allowed || g.App != "demo-app" {
		t.Fatalf("grant %+v", g)
	}

	ctx, _ = newCtx(t, "other-app", "127.0.0.1:5000")
	if !auth.PublicKeyHandler(ctx, k.PublicKey()) {
		t.Fatal("a valid key for another app must authenticate, with Allowed=false")
	}
	if g, _ := GrantFrom(ctx); g.Allowed || g.App != "other-app" {
		t.Fatalf("grant %+v", g)
	}
	t.Log(logs.String())
}

func TestVerifiedPublicKeyCallback(t *testing.T) {
	dir := t.TempDir()
	a, b := newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine("", a.PublicKey())+authLine("", b.PublicKey()))
	auth, _ := newAuthority(t, Config{AuthorizedKeysFile: file})
	ctx, _ := newCtx(t, "app", "192.0.2.1:4000")
	verified := auth.VerifiedPublicKeyCallback(ctx)

	auth.PublicKeyHandler(ctx, a.PublicKey())
	auth.PublicKeyHandler(ctx, b.PublicKey())
	if _, err := verified(nil, b.PublicKey(), nil, "ssh-ed25519"); err != nil {
		t.Fatalf("B verified after B granted: %v", err)
	}
	// Were x/crypto ever to verify A after granting B, authentication fails
	// and no grant is left.
	if _, err := verified(nil, a.PublicKey(), nil, "ssh-ed25519"); err == nil {
		t.Fatal("A verified with B's grant")
	}
	if _, ok := GrantFrom(ctx); ok {
		t.Fatal("grant left after a mismatch")
	}
}

func TestNoTouchRequiredReachesPermissions(t *testing.T) {
	dir := t.TempDir()
	fido, plain := newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine("no-touch-required", fido.PublicKey())+authLine("", plain.PublicKey()))
	auth, _ := newAuthority(t, Config{AuthorizedKeysFile: file})
	ctx, _ := newCtx(t, "app", "192.0.2.1:4000")
	has := func() bool { _, ok := ctx.Permissions().Extensions["no-touch-required"]; return ok }
	auth.PublicKeyHandler(ctx, fido.PublicKey())
	if !has() {
		t.Fatal("no-touch-required not passed on")
	}
	auth.PublicKeyHandler(ctx, plain.PublicKey())
	if has() {
		t.Fatal("no-touch-required left for a key without it")
	}
}

package auth

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// bump gives a file a modification time of its own, so that two edits in
// the same clock tick with the same size are still seen as a change.
func bump(t *testing.T, p string, n int) {
	t.Helper()
	mt := time.Date(2030, 1, 1, 0, 0, n, 0, time.UTC)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func TestReloadOnEdit(t *testing.T) {
	dir := t.TempDir()
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine("", k1.PublicKey()))
	bump(t, file, 1)
	a, logs := newAuthority(t, Config{AuthorizedKeysFile: file, ReloadInterval: time.Nanosecond})

	if got, _ := attempt(t, a, "app", "127.0.0.1:1", k1.PublicKey()); got != allowed {
		t.Fatalf("k1: %v", got)
	}
	// Edited in place: the next attempt sees the new file.
	writeFile(t, dir, "authorized_keys", authLine(`apps="demo-*"`, k2.PublicKey()))
	bump(t, file, 2)
	if got, _ := attempt(t, a, "app", "127.0.0.1:1", k1.PublicKey()); got != refused {
		t.Fatalf("k1 after removal: %v", got)
	}
	if got, _ := attempt(t, a, "demo-x", "127.0.0.1:1", k2.PublicKey()); got != allowed {
		t.Fatalf("k2 after edit: %v", got)
	}

	// A bad edit keeps the last good set and says why, naming file:line.
	writeFile(t, dir, "authorized_keys", authLine("", k3.PublicKey())+"nonsense-option "+authLine("", k3.PublicKey()))
	bump(t, file, 3)
	if got, _ := attempt(t, a, "demo-x", "127.0.0.1:1", k2.PublicKey()); got != allowed {
		t.Fatalf("k2 after a bad edit: %v", got)
	}
	if got, _ := attempt(t, a, "demo-x", "127.0.0.1:1", k3.PublicKey()); got != refused {
		t.Fatalf("k3 from a bad file: %v", got)
	}
	if !strings.Contains(logs.String(), "reload failed") || !strings.Contains(logs.String(), file+":2") {
		t.Fatalf("bad reload not logged with file:line:\n%s", logs)
	}

	// Replaced by rename (a new inode), as editors and config tools do.
	tmp := writeFile(t, dir, "new", authLine("", k3.PublicKey()))
	bump(t, tmp, 3)
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	if got, _ := attempt(t, a, "demo-x", "127.0.0.1:1", k3.PublicKey()); got != allowed {
		t.Fatalf("k3 after rename: %v", got)
	}

	// A removed file is a failed reload too: the last set stays.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if got, _ := attempt(t, a, "demo-x", "127.0.0.1:1", k3.PublicKey()); got != allowed {
		t.Fatalf("k3 after removal of the file: %v", got)
	}
}

func TestWatchLogsBadEditAtOnce(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	file := writeFile(t, dir, "authorized_keys", authLine("", k.PublicKey()))
	a, logs := newAuthority(t, Config{AuthorizedKeysFile: file, ReloadInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.Watch(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	writeFile(t, dir, "authorized_keys", "# a comment\nbroken line here\n")
	bump(t, file, 9)
	waitFor(t, func() bool { return strings.Contains(logs.String(), file+":2") })
	if got, _ := attempt(t, a, "app", "127.0.0.1:1", k.PublicKey()); got != allowed {
		t.Fatalf("last good key: %v", got)
	}
}

func TestReloadTrustedCAAndRevoked(t *testing.T) {
	dir := t.TempDir()
	ca, user := newKey(t), newKey(t)
	now := time.Now()
	caFile := writeFile(t, dir, "ca.pub", "# none yet\n")
	ak := writeFile(t, dir, "authorized_keys", authLine("", newKey(t).PublicKey()))
	rev := writeFile(t, dir, "revoked", "")
	a, _ := newAuthority(t, Config{AuthorizedKeysFile: ak, TrustedUserCAKeysFile: caFile, RevokedKeysFile: rev, ReloadInterval: time.Nanosecond})
	cert := signCert(t, ca, user.PublicKey(), now, nil)
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", cert); got != refused {
		t.Fatalf("before the CA is trusted: %v", got)
	}
	writeFile(t, dir, "ca.pub", authLine("", ca.PublicKey()))
	bump(t, caFile, 1)
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", cert); got != allowed {
		t.Fatalf("after the CA is trusted: %v", got)
	}
	writeFile(t, dir, "revoked", authLine("", user.PublicKey()))
	bump(t, rev, 1)
	if got, _ := attempt(t, a, "demo-app", "127.0.0.1:1", cert); got != refused {
		t.Fatalf("after its key is revoked: %v", got)
	}
}

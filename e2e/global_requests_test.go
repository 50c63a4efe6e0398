package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestGlobalRequestRepliesInOrder: OpenSSH's client sends its -R requests
// one after the other without waiting and matches the replies by their
// order (RFC 4254 section 4). The first, allowed, takes the bridge time
// (the connection's one-off starts for it); the second, outside
// permitlisten, is refused at once: its refusal must still come second,
// so that the client names the right port.
func TestGlobalRequestRepliesInOrder(t *testing.T) {
	key := clientKey(t, "default")
	b := startConnBridge(t, Options{AuthorizedKeys: `permitlisten="localhost:8022" ` + publicKey(t, key) + "\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runCmd(t, b.SSH(ctx, "demo-app+conn", []string{"-o", "LogLevel=INFO", "-o", "ExitOnForwardFailure=no",
		"-R", "localhost:8022:127.0.0.1:9", "-R", "localhost:8023:127.0.0.1:9"}, "true"), nil)
	if r.Code != 0 {
		t.Fatalf("code %d, stderr %q", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "remote port forwarding failed for listen port 8023") || strings.Contains(r.Stderr, "listen port 8022") {
		t.Fatalf("stderr %q: want the refusal of 8023 alone", r.Stderr)
	}
	if !b.LogHas("refused forwarding") {
		t.Fatalf("the refusal of 8023 is not logged:\n%s", b.Log())
	}
}

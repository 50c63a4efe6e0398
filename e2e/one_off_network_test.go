package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listensIn reports whether a one-off of b sees the bridge's own listening
// socket in its /proc/net/tcp, which lists the sockets of the one-off's
// network namespace: the host's when it shares the host's network.
func listensIn(t *testing.T, b *Bridge) bool {
	t.Helper()
	port, err := strconv.Atoi(b.Port)
	if err != nil {
		t.Fatal(err)
	}
	r := b.Run("demo-app", nil, "cat /proc/net/tcp; echo read-over")
	if r.Code != 0 || !strings.Contains(r.Stdout, "read-over") {
		t.Fatalf("the one-off did not run: %+v", r)
	}
	return strings.Contains(r.Stdout, fmt.Sprintf("0100007F:%04X 00000000:0000 0A", port))
}

// By default one-offs of the embedded platform have a network of their
// own: the bridge's socket on 127.0.0.1 is not in theirs. Sessions without
// a pty get pipes.
func TestOneOffOwnNetworkByDefault(t *testing.T) {
	b := StartBridge(t, Options{})
	if listensIn(t, b) {
		t.Error("a one-off shares the host's network by default")
	}
	if !b.LogHas("network=own") || !b.LogHas("pipe_mode=true") {
		t.Errorf("the platform's serving line does not say network=own pipe_mode=true:\n%s", b.Log())
	}
	if r := b.Run("demo-app", nil, "test -t 0 && echo terminal; echo over"); r.Stdout != "over\n" {
		t.Errorf("a session without a pty: %+v", r)
	}
}

// --one-off-host-network gives one-offs the host's network;
// --no-pipe-mode serves every session on a terminal, as a PaaS without
// pipe mode does.
func TestOneOffHostNetworkAndNoPipeModeFlags(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--one-off-host-network", "--no-pipe-mode"}})
	if !listensIn(t, b) {
		t.Error("with --one-off-host-network a one-off does not see the host's sockets")
	}
	if r := b.Run("demo-app", nil, "test -t 0 && echo terminal; echo over"); r.Stdout != "terminal\r\nover\r\n" {
		t.Errorf("a session without a pty under --no-pipe-mode: %+v", r)
	}
}

// `bridge platform` takes both settings from its environment, and says
// what it serves in its serving line.
func TestPlatformHostNetworkAndNoPipeModeEnv(t *testing.T) {
	p := startPlatformProcessEnv(t, []string{"PLATFORM_ONE_OFF_HOST_NETWORK=true", "PLATFORM_NO_PIPE_MODE=true"})
	// The serving line may come just after the address file.
	waitFor(t, 5*time.Second, "the serving line to say network=host pipe_mode=false", func() bool {
		log := p.log.String()
		return strings.Contains(log, "network=host") && strings.Contains(log, "pipe_mode=false")
	})
}

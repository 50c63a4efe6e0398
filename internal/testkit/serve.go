package testkit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// Listen opens a TCP listener on a free loopback port (127.0.0.1:0), closed
// when the test ends. Loopback TCP rather than net.Pipe, which deadlocks
// when both ends write first.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Server is what Serve runs: http.Server and the embedded platform both
// are. Serve returns http.ErrServerClosed once Shutdown was called.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Serve runs s on a free loopback port and returns the address it listens
// on (host:port). When the test ends, s is shut down (given 10 s) and Serve
// must have returned http.ErrServerClosed; anything else fails the test.
func Serve(t testing.TB, s Server) string {
	t.Helper()
	l := Listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

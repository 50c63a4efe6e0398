package testkit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// WaitAddressFile waits until path holds the line a process started with
// --listen-address-file writes once it listens, and returns that address
// (host:port). The file appears whole (it is renamed into place), so the
// first read that finds it is the answer. It polls every 10 ms and gives
// up with an error when exited is closed first (the process ended without
// listening) or after within.
func WaitAddressFile(path string, exited <-chan struct{}, within time.Duration) (string, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		raw, err := os.ReadFile(path)
		if err == nil {
			addr, ok := strings.CutSuffix(string(raw), "\n")
			if _, _, err := net.SplitHostPort(addr); !ok || err != nil {
				return "", fmt.Errorf("address file %s holds %q, want host:port and a newline", path, raw)
			}
			return addr, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		select {
		case <-exited:
			return "", errors.New("the process exited before it listened")
		case <-deadline.C:
			return "", fmt.Errorf("no address in %s within %s", path, within)
		case <-tick.C:
		}
	}
}

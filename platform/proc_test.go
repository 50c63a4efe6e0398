package platform

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// sleepMarker is a `sleep` argument unique to one test, so that its
// processes can be told from any other on the host.
func sleepMarker() string {
	return fmt.Sprintf("1000.%d", rand.IntN(1e9))
}

// pidsWithArg lists the processes with arg among their arguments.
func pidsWithArg(arg string) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// waitPids polls until n processes carry arg; it returns them.
func waitPids(t *testing.T, arg string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsWithArg(arg)
		if len(pids) >= n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d processes with %q, have %v", n, arg, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertGone checks that every pid has left /proc (a zombie stays there)
// within d.
func assertGone(t *testing.T, pids []int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, pid := range pids {
		for {
			_, err := os.Stat("/proc/" + strconv.Itoa(pid))
			if os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				t.Fatalf("process %d still there after %v: %s", pid, d, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

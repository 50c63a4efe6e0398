package e2e

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// loadCPUs keeps every core busy with a spinning goroutine until the test
// ends, so that the bridge, the platform and the client get the CPU late
// and in turns, as on a loaded machine: orders of events that an idle
// machine almost never shows become common.
func loadCPUs(t *testing.T) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				if n%(1<<20) == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
	})
}

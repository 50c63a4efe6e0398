package platform

import (
	"io"
	"testing"
	"time"
)

// /wait answers once the command ended, without waiting for the removal of
// the one-off's dir (its /tmp may hold large uploads); the removal still
// happens, and the platform's removals wait for it.
func TestWaitLeavesTheDirRemovalOffThePath(t *testing.T) {
	removing := make(chan string, 1)
	unblock := make(chan struct{})
	removeOneOffDir = func(p string) error {
		removing <- p
		<-unblock
		return removeTree(p)
	}
	t.Cleanup(func() { removeOneOffDir = removeTree })

	tp := startPlatform(t, Config{})
	o := tp.run("demo", "true", false, nil)
	conn, br := o.attach()
	io.Copy(io.Discard, br)
	conn.Close()

	answered := make(chan int, 1)
	go func() {
		status, _ := o.wait()
		answered <- status
	}()
	select {
	case status := <-answered:
		if status != 200 {
			t.Fatalf("wait: %d", status)
		}
	case <-time.After(20 * time.Second):
		close(unblock)
		t.Fatal("/wait waited for the one-off's dir removal")
	}
	var dir string
	select {
	case dir = <-removing:
	case <-time.After(20 * time.Second):
		t.Fatal("the one-off's dir was never removed")
	}
	close(unblock)
	tp.removals.Wait()
	if dir == "" {
		t.Fatal("no dir")
	}
}

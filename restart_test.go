package main

import (
	"slices"
	"testing"
)

// The drain hooks run once, in the order added.
func TestDrainHooksRunOnceInOrder(t *testing.T) {
	var d drainHooks
	var got []int
	d.add(func() { got = append(got, 1) })
	d.add(func() { got = append(got, 2) })
	d.run()
	d.run()
	if !slices.Equal(got, []int{1, 2}) {
		t.Errorf("hooks ran as %v, want [1 2]", got)
	}
}

package platform

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
)

func heapObjectsBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A burst of one-offs, ended and forgotten but for a few, leaves no room
// behind in the platform's maps: a Go map keeps the room of its largest
// size unless made anew (about 6.7 MiB for 100,000 entries in each of two).
// The few left are still found.
func TestForgetGivesBackTheMapsRoom(t *testing.T) {
	p := &Platform{
		cfg:     Config{AppQuota: 1 << 20, TotalQuota: 1 << 20},
		byToken: map[string]*oneOff{},
		byOp:    map[string]*oneOff{},
		alive:   map[string]int{},
		indexes: map[string]int{},
	}
	const n = 100000
	// The one-offs are made before the baseline and kept to the end, so
	// that only the maps' own room is measured.
	all := make([]*oneOff, n)
	for i := range all {
		all[i] = &oneOff{app: "demo-app", token: fmt.Sprintf("token-%d", i), opID: fmt.Sprintf("op-%d", i)}
	}
	base := heapObjectsBytes()
	for _, o := range all {
		if err := p.admit(o); err != nil {
			t.Fatal(err)
		}
	}
	peak := heapObjectsBytes()
	const kept = 10
	for _, o := range all[kept:] {
		p.released(o)
		p.forget(o)
	}
	after := heapObjectsBytes()
	for _, o := range all[:kept] {
		if p.byAttachToken(o.token) != o || p.byOperation(o.opID) != o {
			t.Errorf("one-off %s, not forgotten, is not found", o.opID)
		}
	}
	if len(p.byToken) != kept || len(p.byOp) != kept {
		t.Errorf("%d and %d entries left, want %d", len(p.byToken), len(p.byOp), kept)
	}
	runtime.KeepAlive(all)
	runtime.KeepAlive(p)
	grown := int64(peak) - int64(base)
	left := int64(after) - int64(base)
	t.Logf("maps of %d one-offs: %d KiB at their peak, %d KiB left once all but 10 are forgotten", n, grown>>10, left>>10)
	if grown < 1<<20 {
		t.Fatalf("the maps grew by %d KiB only for %d entries: the measure does not see them", grown>>10, n)
	}
	if left > grown/10 {
		t.Errorf("%d KiB of the maps' %d KiB left once every one-off is forgotten", left>>10, grown>>10)
	}
}

package debugserver

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
)

// Stats is one reading of the process, as GET /debug/stats gives it.
type Stats struct {
	// OpenFDs is the number of the process's open file descriptors: the
	// entries of /proc/self/fd, less the one that reading it opened.
	OpenFDs int `json:"open_fds"`
	// Goroutines is runtime.NumGoroutine.
	Goroutines int `json:"goroutines"`
	// HeapObjectsBytes is runtime/metrics' /memory/classes/heap/objects:bytes:
	// the bytes of heap objects, live ones and dead ones not yet swept.
	// Right after a GC (GC true) it is the live heap.
	HeapObjectsBytes uint64 `json:"heap_objects_bytes"`
	// HeapLiveBytes is /gc/heap/live:bytes: the heap marked live by the
	// last GC.
	HeapLiveBytes uint64 `json:"heap_live_bytes"`
	// Threads is the number of the process's OS threads (/proc/self/status).
	Threads int `json:"threads"`
	// RSSBytes is the process's resident set (VmRSS of /proc/self/status).
	RSSBytes uint64 `json:"rss_bytes"`
	// GC says whether a garbage collection was forced just before reading.
	GC bool `json:"gc"`
}

// heapMetrics are the runtime/metrics samples Stats reads.
var heapMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
}

// Read reads the process's figures; with gc it first forces a garbage
// collection (runtime.GC, which blocks until it is done), so that the
// heap counts only live objects. It fails when /proc/self is unreadable
// (not Linux, or no /proc mounted).
func Read(gc bool) (Stats, error) {
	if gc {
		runtime.GC()
	}
	s := Stats{Goroutines: runtime.NumGoroutine(), GC: gc}
	samples := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	for i, sm := range samples {
		if sm.Value.Kind() != metrics.KindUint64 {
			return Stats{}, fmt.Errorf("runtime/metrics: %s is not supported by this Go runtime", heapMetrics[i])
		}
	}
	s.HeapObjectsBytes, s.HeapLiveBytes = samples[0].Value.Uint64(), samples[1].Value.Uint64()
	fds, err := openFDs()
	if err != nil {
		return Stats{}, err
	}
	s.OpenFDs = fds
	if s.Threads, s.RSSBytes, err = status(); err != nil {
		return Stats{}, err
	}
	return s, nil
}

// openFDs counts /proc/self/fd, less the descriptor of the directory
// being read.
func openFDs() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("open file descriptors: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("open file descriptors: %w", err)
	}
	return len(names) - 1, nil
}

// status reads Threads and VmRSS (kB) from /proc/self/status.
func status() (threads int, rss uint64, err error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("process status: %w", err)
	}
	var haveThreads, haveRSS bool
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		name, value, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		fields := bytes.Fields(value)
		if len(fields) == 0 {
			continue
		}
		switch string(name) {
		case "Threads":
			threads, err = strconv.Atoi(string(fields[0]))
			haveThreads = err == nil
		case "VmRSS":
			var kb uint64
			kb, err = strconv.ParseUint(string(fields[0]), 10, 64)
			rss, haveRSS = kb<<10, err == nil
		}
	}
	if !haveThreads || !haveRSS {
		return 0, 0, fmt.Errorf("process status: no Threads or VmRSS line in /proc/self/status")
	}
	return threads, rss, nil
}

package debugserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
)

func getStats(t *testing.T, url string) Stats {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	var s Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The stats follow what the process holds: a file opened and a goroutine
// started between two readings show in the second.
func TestStatsCountWhatTheProcessHolds(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	// Keep-alive connections of earlier requests would be counted too:
	// one connection for all, opened by the first request.
	http.DefaultClient.Transport = &http.Transport{MaxConnsPerHost: 1}
	t.Cleanup(func() { http.DefaultClient.Transport = nil })
	getStats(t, srv.URL+StatsPath)
	before := getStats(t, srv.URL+StatsPath+"?gc=1")
	if !before.GC || before.OpenFDs <= 0 || before.Goroutines <= 0 || before.HeapObjectsBytes == 0 || before.HeapLiveBytes == 0 || before.Threads <= 0 || before.RSSBytes == 0 {
		t.Fatalf("implausible reading: %+v", before)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { <-stop; close(done) }()
	after := getStats(t, srv.URL+StatsPath)
	close(stop)
	<-done
	if after.GC {
		t.Errorf("gc reported without ?gc=1: %+v", after)
	}
	if after.OpenFDs != before.OpenFDs+1 {
		t.Errorf("open_fds: %d before, %d after opening one file", before.OpenFDs, after.OpenFDs)
	}
	if after.Goroutines != before.Goroutines+1 {
		t.Errorf("goroutines: %d before, %d after starting one", before.Goroutines, after.Goroutines)
	}
}

// A forced GC leaves only live objects: garbage made before the reading
// is not counted.
func TestStatsGCDropsGarbage(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	base := getStats(t, srv.URL+StatsPath+"?gc=1")
	var sink [][]byte
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	held := getStats(t, srv.URL+StatsPath+"?gc=1")
	runtime.KeepAlive(sink)
	if held.HeapObjectsBytes < base.HeapObjectsBytes+60<<20 {
		t.Errorf("64 MiB held: heap %d, was %d", held.HeapObjectsBytes, base.HeapObjectsBytes)
	}
	freed := getStats(t, srv.URL+StatsPath+"?gc=1")
	if freed.HeapObjectsBytes > base.HeapObjectsBytes+8<<20 {
		t.Errorf("64 MiB dropped: heap %d, was %d before", freed.HeapObjectsBytes, base.HeapObjectsBytes)
	}
}

func TestPprofAndNotFound(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]int{
		"/debug/pprof/":                  http.StatusOK,
		"/debug/pprof/goroutine?debug=1": http.StatusOK,
		"/debug/pprof/heap":              http.StatusOK,
		"/debug/pprof/cmdline":           http.StatusOK,
		"/metrics":                       http.StatusNotFound,
		"/":                              http.StatusNotFound,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/debug/pprof/goroutine?debug=1" && !strings.Contains(string(body), "goroutine profile:") {
			t.Errorf("GET %s: not a goroutine profile: %.200s", path, body)
		}
	}
	resp, err := http.Post(srv.URL+StatsPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", StatsPath, resp.StatusCode)
	}
}

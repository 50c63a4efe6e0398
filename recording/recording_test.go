package recording

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// event is one parsed event line.
type event struct {
	Time float64
	Kind string
	Data string
}

// parse reads an asciicast v2 file: its header and events. Each line must
// be JSON on its own.
func parse(t *testing.T, raw []byte) (map[string]any, []event) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	if !sc.Scan() {
		t.Fatalf("no header line in %q", raw)
	}
	var header map[string]any
	if err := json.Unmarshal(sc.Bytes(), &header); err != nil {
		t.Fatalf("header %q: %v", sc.Bytes(), err)
	}
	var events []event
	for sc.Scan() {
		var e []any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event line %q: %v", sc.Bytes(), err)
		}
		if len(e) != 3 {
			t.Fatalf("event line %q: %d elements, want 3", sc.Bytes(), len(e))
		}
		tm, ok1 := e[0].(float64)
		kind, ok2 := e[1].(string)
		data, ok3 := e[2].(string)
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("event line %q: want [number, string, string]", sc.Bytes())
		}
		events = append(events, event{tm, kind, data})
	}
	if !bytes.HasSuffix(raw, []byte("\n")) {
		t.Fatalf("file does not end with a whole line: %q", raw)
	}
	return header, events
}

func joined(events []event, kind string) string {
	var b strings.Builder
	for _, e := range events {
		if e.Kind == kind {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// memFile is a File in memory that counts its syncs.
type memFile struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	syncs  int
	closed bool
	fail   error
}

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	return f.buf.Write(p)
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	return nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *memFile) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.buf.Bytes()...)
}

func (f *memFile) syncCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

func TestHeader(t *testing.T) {
	f := &memFile{}
	start := time.Unix(1764452603, 0)
	r, err := New(f, Header{Width: 100, Height: 30, Timestamp: start, Term: "xterm-256color", Shell: "bash", Command: "bash", Title: "demo-app <&>"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"version":2,"width":100,"height":30,"timestamp":1764452603,"command":"bash","title":"demo-app <&>","env":{"SHELL":"bash","TERM":"xterm-256color"}}` + "\n"
	if got := string(f.bytes()); got != want {
		t.Fatalf("header\n got %s\nwant %s", got, want)
	}

	f = &memFile{}
	r, err = New(f, Header{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	h, events := parse(t, f.bytes())
	if h["width"] != 80.0 || h["height"] != 24.0 || h["version"] != 2.0 || len(events) != 0 {
		t.Fatalf("header without a size: %v, events %v", h, events)
	}
	if env, ok := h["env"].(map[string]any); !ok || len(env) != 0 {
		t.Fatalf("env %v, want {}", h["env"])
	}
	if _, ok := h["title"]; ok {
		t.Fatalf("empty title written: %v", h)
	}
}

// clock is a fake time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestEventsInOrderWithTimes(t *testing.T) {
	start := time.Unix(1000, 0)
	c := &clock{t: start}
	f := &memFile{}
	r, err := newRecorder(f, Header{Timestamp: start}, Options{Input: true}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	c.set(start.Add(1500 * time.Millisecond))
	r.Output([]byte("$ "))
	c.set(start.Add(2*time.Second + 250*time.Microsecond))
	r.Input([]byte("ls\r"))
	r.Resize(100, 30)
	// A clock that goes back (a wall-clock step) never makes time go back.
	c.set(start.Add(time.Second))
	r.Output([]byte("a \"b\" \\ \x1b[0m\t\r\n"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(f.bytes()), "\n", 2)
	want := `[1.500000, "o", "$ "]
[2.000250, "i", "ls\r"]
[2.000250, "r", "100x30"]
[2.000250, "o", "a \"b\" \\ \u001b[0m\t\r\n"]
`
	if lines[1] != want {
		t.Fatalf("events\n got %s\nwant %s", lines[1], want)
	}
	_, events := parse(t, f.bytes())
	if got := joined(events, "o"); got != "$ a \"b\" \\ \x1b[0m\t\r\n" {
		t.Fatalf("output parsed back %q", got)
	}
}

func TestInputOnlyWhenAsked(t *testing.T) {
	f := &memFile{}
	r, err := New(f, Header{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Input([]byte("secret\r"))
	r.Output([]byte("Password: "))
	r.Input([]byte("\xe2"))
	r.Close()
	_, events := parse(t, f.bytes())
	if len(events) != 1 || events[0].Kind != "o" || r.RecordsInput() {
		t.Fatalf("events %v, want the output only", events)
	}
}

// TestUTF8Split cuts text with sequences of each length at every byte: the
// recorded output and input are the text, with no replacement added.
func TestUTF8Split(t *testing.T) {
	text := "aé€😀b\u00a0\U0010FFFF\uFFFD."
	for cut := 0; cut <= len(text); cut++ {
		f := &memFile{}
		r, _ := New(f, Header{}, Options{Input: true})
		r.Output([]byte(text[:cut]))
		r.Input([]byte(text[:cut]))
		r.Output([]byte(text[cut:]))
		r.Input([]byte(text[cut:]))
		r.Close()
		_, events := parse(t, f.bytes())
		if got := joined(events, "o"); got != text {
			t.Fatalf("cut at %d: output %q, want %q", cut, got, text)
		}
		if got := joined(events, "i"); got != text {
			t.Fatalf("cut at %d: input %q, want %q", cut, got, text)
		}
	}
	// One byte at a time.
	f := &memFile{}
	r, _ := New(f, Header{}, Options{})
	for i := 0; i < len(text); i++ {
		r.Output([]byte{text[i]})
	}
	r.Close()
	_, events := parse(t, f.bytes())
	if got := joined(events, "o"); got != text {
		t.Fatalf("byte by byte: %q, want %q", got, text)
	}
}

// TestInvalidUTF8 replaces each maximal invalid subpart with one U+FFFD:
// the Unicode Standard's examples (chapter 3, "U+FFFD Substitution of
// Maximal Subparts"), and a sequence cut off by the end of the recording.
func TestInvalidUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd"},
		{"\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\x41"},
		{"\xED\xA0\x80\xED\xBF\xBF\xED\xAF\x41", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\x41"},
		{"\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\x41\uFFFD\uFFFD\x42"},
		{"\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41", "\uFFFD\uFFFD\uFFFD\uFFFD\x41"},
		{"ok\xF0\x9F\x98", "ok\uFFFD"},
	} {
		f := &memFile{}
		r, _ := New(f, Header{}, Options{})
		r.Output([]byte(c.in))
		r.Close()
		_, events := parse(t, f.bytes())
		if got := joined(events, "o"); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// TestUTF8AsAsciinema decodes random bytes in random chunks and compares
// with Python's incremental "replace" decoder, the one asciinema records
// with.
func TestUTF8AsAsciinema(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 (asciinema's runtime) not found")
	}
	rng := rand.New(rand.NewSource(15))
	alphabet := []byte{'a', 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff}
	var in bytes.Buffer
	var cuts []int
	for i := 0; i < 4000; i++ {
		in.WriteByte(alphabet[rng.Intn(len(alphabet))])
		if rng.Intn(4) == 0 {
			cuts = append(cuts, in.Len())
		}
	}
	raw := in.Bytes()
	f := &memFile{}
	r, _ := New(f, Header{}, Options{})
	prev := 0
	for _, c := range append(cuts, len(raw)) {
		r.Output(raw[prev:c])
		prev = c
	}
	r.Close()
	_, events := parse(t, f.bytes())
	got := joined(events, "o")

	cutsJSON, _ := json.Marshal(cuts)
	script := fmt.Sprintf(`
import codecs, sys
data = sys.stdin.buffer.read()
cuts = %s + [len(data)]
d = codecs.getincrementaldecoder("UTF-8")("replace")
out, prev = [], 0
for c in cuts:
    out.append(d.decode(data[prev:c]))
    prev = c
out.append(d.decode(b"", True))
sys.stdout.buffer.write("".join(out).encode("utf-8"))
`, cutsJSON)
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = bytes.NewReader(raw)
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("differs from Python's decoder at byte %d: got %q, want %q", i, got[i:min(i+20, len(got))], want[i:min(i+20, len(want))])
			}
		}
		t.Fatalf("differs from Python's decoder: %d bytes, want %d", len(got), len(want))
	}
}

// TestConcurrentEvents: output, input and resizes from three goroutines
// each keep their order, and times never go back across the file.
func TestConcurrentEvents(t *testing.T) {
	f := &memFile{}
	r, _ := New(f, Header{}, Options{Input: true})
	var wg sync.WaitGroup
	for _, write := range []func(i int){
		func(i int) { r.Output([]byte(fmt.Sprintf("o%d;", i))) },
		func(i int) { r.Input([]byte(fmt.Sprintf("i%d;", i))) },
		func(i int) { r.Resize(i+1, 24) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				write(i)
			}
		}()
	}
	wg.Wait()
	r.Close()
	_, events := parse(t, f.bytes())
	var out, in strings.Builder
	var sizes []string
	last := 0.0
	for _, e := range events {
		if e.Time < last {
			t.Fatalf("time went back: %v after %v", e.Time, last)
		}
		last = e.Time
		switch e.Kind {
		case "o":
			out.WriteString(e.Data)
		case "i":
			in.WriteString(e.Data)
		case "r":
			sizes = append(sizes, e.Data)
		}
	}
	var wantOut, wantIn strings.Builder
	for i := range 500 {
		fmt.Fprintf(&wantOut, "o%d;", i)
		fmt.Fprintf(&wantIn, "i%d;", i)
		if sizes[i] != fmt.Sprintf("%dx24", i+1) {
			t.Fatalf("resize %d is %q", i, sizes[i])
		}
	}
	if out.String() != wantOut.String() || in.String() != wantIn.String() {
		t.Fatal("output or input out of order")
	}
}

// TestWrittenAtOnce: an event is in the file when its call returns, with no
// Close or sync: what a process killed at that moment leaves.
func TestWrittenAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	r, err := Create(dir, FileName("demo-app", time.Unix(0, 0), "c0ffee", 1), Header{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	name := filepath.Join(dir, "demo-app-19700101T000000Z-c0ffee-1.cast")
	r.Output([]byte("first\r\n"))
	r.Output([]byte("caf\xc3"))
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	_, events := parse(t, raw)
	if got := joined(events, "o"); got != "first\r\ncaf" {
		t.Fatalf("file holds %q before Close, want %q", got, "first\r\ncaf")
	}
	r.Output([]byte("\xa9"))
	raw, _ = os.ReadFile(name)
	if _, events = parse(t, raw); joined(events, "o") != "first\r\ncafé" {
		t.Fatalf("file holds %q", joined(events, "o"))
	}
}

func TestCreateModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "recordings")
	r, err := Create(dir, "x.cast", Header{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, "x.cast"): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	if _, err := Create(dir, "x.cast", Header{}, Options{}); err == nil {
		t.Fatal("an existing recording was overwritten")
	}
	if _, err := Create(dir, "../x.cast", Header{}, Options{}); err == nil {
		t.Fatal("a name with a separator was taken")
	}
	if err := r.Close(); err == nil {
		t.Fatal("second Close returned nil")
	}
}

// TestSyncPolicy: without an interval the file is synced at the header and
// at Close only; with one, a background sync follows writes, and none
// runs while nothing was written.
func TestSyncPolicy(t *testing.T) {
	f := &memFile{}
	r, _ := New(f, Header{}, Options{})
	for range 100 {
		r.Output([]byte("x"))
	}
	if n := f.syncCount(); n != 1 {
		t.Fatalf("%d syncs before Close, want 1 (the header)", n)
	}
	r.Close()
	if n := f.syncCount(); n != 2 || !f.closed {
		t.Fatalf("%d syncs after Close (closed %v), want 2", n, f.closed)
	}

	f = &memFile{}
	r, _ = New(f, Header{}, Options{SyncInterval: 5 * time.Millisecond})
	r.Output([]byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for f.syncCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no background sync after a write")
		}
		time.Sleep(time.Millisecond)
	}
	// Nothing written since: twenty intervals pass without a sync.
	time.Sleep(100 * time.Millisecond)
	if n := f.syncCount(); n != 2 {
		t.Fatalf("%d syncs with nothing written, want 2", n)
	}
	r.Close()
}

func TestWriteErrorStops(t *testing.T) {
	f := &memFile{}
	r, _ := New(f, Header{}, Options{})
	r.Output([]byte("a"))
	f.fail = errors.New("disk full")
	r.Output([]byte("b"))
	f.fail = nil
	r.Output([]byte("c"))
	if err := r.Err(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Err() = %v", err)
	}
	if err := r.Close(); err == nil {
		t.Fatal("Close hid the write error")
	}
	_, events := parse(t, f.bytes())
	if joined(events, "o") != "a" {
		t.Fatalf("events after a failed write: %v", events)
	}
}

// TestPlays: asciinema itself reads a recording back: `asciinema cat`
// prints the output events, whatever resizes and input events are among
// them. It needs a terminal, which script(1) gives it.
func TestPlays(t *testing.T) {
	asciinema, err := exec.LookPath("asciinema")
	if err != nil {
		t.Fatal("asciinema not found (apt-get install asciinema)")
	}
	scriptCmd, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script (util-linux) not found")
	}
	dir := t.TempDir()
	r, err := Create(dir, "p.cast", Header{Term: "xterm", Command: "bash"}, Options{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	text := "héllo \x1b[1mwörld\x1b[0m ✓\r\n\"quoted\" \\ 😀\r\n"
	for i := 0; i < len(text); i += 3 {
		r.Output([]byte(text[i:min(i+3, len(text))]))
		r.Input([]byte("k"))
		r.Resize(100+i, 30)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(scriptCmd, "-qec", asciinema+" cat "+filepath.Join(dir, "p.cast"), "/dev/null").Output()
	if err != nil {
		t.Fatalf("asciinema cat: %v", err)
	}
	if string(out) != text {
		t.Fatalf("asciinema cat printed %q, want %q", out, text)
	}
}

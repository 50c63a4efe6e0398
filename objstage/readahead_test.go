package objstage

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// The readahead gives the bytes of its reader in order, whatever the
// sizes of the reads on either side, and its reader's error at the end.
func TestReadahead(t *testing.T) {
	data := randBytes(t, 10<<20+17)
	for _, size := range []int{1, 1000, 1 << 20} {
		ra := newReadahead(io.NopCloser(iotest.HalfReader(bytes.NewReader(data))), size*3+1, 2)
		got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 3<<20)))
		if err != nil || !bytes.Equal(got, data[:3<<20]) {
			t.Fatalf("size %d: %d bytes, %v", size, len(got), err)
		}
		rest, err := io.ReadAll(ra)
		if err != nil || !bytes.Equal(rest, data[3<<20:]) {
			t.Fatalf("size %d: rest %d bytes, %v", size, len(rest), err)
		}
		ra.Close()
	}
	ra := newReadahead(io.NopCloser(iotest.TimeoutReader(bytes.NewReader(data))), 100, 2)
	if _, err := io.ReadAll(ra); err != iotest.ErrTimeout {
		t.Fatalf("error: %v", err)
	}
	ra.Close()
}

package sftp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// A session that ends with files open, its connection dropped, gives
// every handle back to the total.
func TestHandlesGivenBackWhenSessionDrops(t *testing.T) {
	store := newStore(t, uploads.Limits{})
	lim := NewHandles(3, 3)
	s1 := connectWith(t, store.Scope("u1", "a"), Options{Handles: lim})
	for i := range 3 {
		if _, err := s1.client.Create(fmt.Sprint("f", i)); err != nil {
			t.Fatal(err)
		}
	}

	s2 := connectWith(t, store.Scope("u2", "a"), Options{Handles: lim})
	_, err := s2.client.Create("g")
	var se *pkgsftp.StatusError
	if !errors.As(err, &se) || se.FxCode() != pkgsftp.ErrSSHFxFailure || !strings.Contains(err.Error(), "at most 3 in all SFTP sessions") {
		t.Fatalf("open past the total = %v", err)
	}
	if got := s2.stderr.String(); got != "open refused: \"/tmp/uploads/g\": too many open files on the bridge (at most 3 in all SFTP sessions); try again later\n" {
		t.Fatalf("stderr = %q", got)
	}

	s1.conn.Close()
	select {
	case err := <-s1.done:
		s1.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the connection dropped")
	}
	for i := range 3 {
		if _, err := s2.client.Create(fmt.Sprint("g", i)); err != nil {
			t.Fatalf("open %d after the other session dropped: %v", i+1, err)
		}
	}
}

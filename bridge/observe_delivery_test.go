package bridge

import (
	"testing"
	"time"

	"sshbridge/auth"
)

// Files in flight at once report their progress file after file, a file's
// first report only once the one before it was accepted: a file's time is
// the session's wait for it, counted from the start of the delivery for the
// first, so that the times add up to the whole delivery.
func TestObserveDeliveryTimesTheSessionsWait(t *testing.T) {
	sess := &session{app: "demo-app", grant: &auth.Grant{Fingerprint: "SHA256:test"}}
	start := time.Now()
	progress := sess.observeDelivery(nil)
	time.Sleep(30 * time.Millisecond) // the first file is on its way before its first report
	progress("a", 0, 1, false)
	time.Sleep(30 * time.Millisecond)
	progress("a", 1, 1, true)
	// b was sent meanwhile: its reports come at once.
	progress("b", 0, 1, false)
	progress("b", 1, 1, true)
	total := time.Since(start)

	if len(sess.delivered) != 2 {
		t.Fatalf("events: %+v", sess.delivered)
	}
	a, b := sess.delivered[0].Duration, sess.delivered[1].Duration
	if a < 60*time.Millisecond {
		t.Errorf("a's time %v does not count from the start of the delivery (60 ms before it was accepted)", a)
	}
	if b > a || a+b > total {
		t.Errorf("times a=%v b=%v do not add up within the delivery's %v", a, b, total)
	}
}

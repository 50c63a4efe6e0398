package platform

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	RunInitIfRequested() // one-offs re-execute this test binary as their init
	os.Exit(m.Run())
}

package platform

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	RunInitIfRequested() // one-offs re-execute this test binary as their init
	runNetHelperIfRequested()
	runNoNetnsPlatformIfRequested()
	code := m.Run()
	removeNetHelper()
	os.Exit(code)
}

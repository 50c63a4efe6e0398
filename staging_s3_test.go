package main

import (
	"strings"
	"testing"
)

// An s3:// staging URL without a usable key file stops the start, naming
// what is missing (fail closed: no store is opened).
func TestObjectStoreNeedsKeyFile(t *testing.T) {
	cfg := &bridgeFlags{stagingURL: "s3://bucket/prefix", dataDir: t.TempDir()}
	if _, err := openStore(cfg, nil); err == nil || !strings.Contains(err.Error(), "--staging-key-file is required") {
		t.Fatalf("no key file: %v", err)
	}
	cfg.stagingKeyFile = cfg.dataDir + "/missing"
	if _, err := openStore(cfg, nil); err == nil || !strings.Contains(err.Error(), "staging key file") {
		t.Fatalf("missing key file: %v", err)
	}
}

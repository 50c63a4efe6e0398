package e2e

import (
	"testing"
)

// A file over the embedded platform's default cap (100 MiB), staged under
// a raised --upload-max-file-size, reaches the next one-off whole, with the
// file staged after it: the embedded platform takes what the bridge
// stages. Before, the platform refused it at delivery (413, exit code
// 245), and every session of that key and app stopped there until the
// file was removed.
func TestUploadOverDefaultSizeDelivered(t *testing.T) {
	b := StartBridge(t, Options{Args: []string{"--upload-max-file-size", "101M"}})
	files := map[string][]byte{
		"big":   randomData(100<<20 + 512<<10), // past 100 MiB and the platform's multipart slack
		"after": []byte("staged after the big one\n"),
	}
	dir := localTree(t, files)
	mustOK(t, "sftp put", b.sftpBatch(t, dir, "", "demo-app", "put big\nput after\n"))
	if got, want := remoteHashes(t, b, "demo-app"), hashes(files, ""); got != want {
		t.Fatalf("the one-off has\n%s\nwant\n%s", got, want)
	}
}

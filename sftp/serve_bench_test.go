package sftp

import (
	"bytes"
	"testing"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/uploads"
)

// BenchmarkUpload measures the SFTP layer alone (pkg/sftp's client over
// loopback TCP, no SSH) writing into the staging area, so that a slow SSH
// transfer can be told from a slow staging area.
func BenchmarkUpload(b *testing.B) {
	s, err := uploads.Open(b.TempDir(), uploads.Limits{MaxFileSize: -1, UserQuota: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sc := s.Scope("u", "a")
	sess := connectTB(b, sc, pkgsftp.UseConcurrentWrites(true), pkgsftp.MaxConcurrentRequestsPerFile(64)).client
	data := make([]byte, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		f, err := sess.Create("f")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

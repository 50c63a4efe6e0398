package bridge

import "testing"

// The commands are those rsync 3.2 and later sends (the bridge's exec log).
func TestIsRsyncUpload(t *testing.T) {
	for _, c := range []struct {
		command string
		upload  bool
	}{
		{"rsync --server -e.LsfxCIvu . /tmp/uploads/", true},
		{"rsync --server -vlogDtpre.iLsfxCIvu --new-compress --delete . /tmp/a\\ b/", true},
		{"rsync --server -se.LsfxCIvu", true}, // --protect-args: paths in-band
		{"cd /tmp && rsync --server -e.LsfxCIvu . /tmp/uploads/", true},
		{"/usr/bin/rsync --server -e.LsfxCIvu . x", true},
		{"rsync --server --daemon .", true}, // direction chosen in-band
		{"rsync --server --sender -vlogDtpre.iLsfxCIvu . /etc/hostname", false},
		{"rsync --server --sender -se.LsfxCIvu", false},
		{"rsync --server -e.LsfxCIvu . --sender", true}, // a path, not the option
		{"rsync -av /a /b", false},
		{"rsync", false},
		{"--server", false},
		{"echo --server", false},
		{"", false},
	} {
		if got := isRsyncUpload(c.command); got != c.upload {
			t.Errorf("isRsyncUpload(%q) = %v, want %v", c.command, got, c.upload)
		}
	}
}

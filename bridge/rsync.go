package bridge

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"
)

// rsyncUploadMessage is the line an rsync upload gets instead of a one-off.
const rsyncUploadMessage = "rsync cannot upload through this bridge: a one-off's files end with it. Use scp or sftp (they land in /tmp/uploads of your next session), or run rsync inside one session."

// refuseRsyncUpload is the interceptor of the server side of an rsync
// upload: its handler fails the session (ExitRsyncUpload, one line) and
// starts no one-off. It returns nil for any other command, which goes on to
// the next interceptor.
//
// rsync runs "RSYNC_PATH --server [--sender] OPTIONS . PATHS" through the
// remote shell (RSYNC_PATH is "rsync" unless --rsync-path says otherwise;
// with --protect-args the paths come in-band, after the options). The
// remote end sends files only with --sender; without it the one-off would
// receive them, and they would end with it while rsync reports success.
// "rsync --server --daemon" is refused too: its direction is chosen inside
// the protocol, so the command cannot tell an upload from a download.
func refuseRsyncUpload(command string) ExecHandler {
	if !isRsyncUpload(command) {
		return nil
	}
	return func(context.Context, string, string, io.ReadWriter, io.Writer) (int, error) {
		return 0, &exitFailure{ExitRsyncUpload, rsyncUploadMessage, errors.New("rsync upload refused: it would land in a one-off that ends with the session")}
	}
}

// isRsyncUpload says whether command, split at spaces, has a word
// "--server" right after a word whose base name is "rsync", and no
// "--sender" among the options that follow it (up to the first word not
// starting with "-": the "." or a path).
func isRsyncUpload(command string) bool {
	words := strings.Fields(command)
	for i := 1; i < len(words); i++ {
		if words[i] != "--server" || path.Base(words[i-1]) != "rsync" {
			continue
		}
		for _, w := range words[i+1:] {
			if !strings.HasPrefix(w, "-") {
				break
			}
			if w == "--sender" {
				return false
			}
		}
		return true
	}
	return false
}

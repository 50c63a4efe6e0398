package bridge

import (
	"context"
	"fmt"
	"io"
	"path"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"
)

// uploadsDir is where a one-off finds the pending files (PROTOCOL.md:
// POST {attach_url}/files).
const uploadsDir = "/tmp/uploads"

// deliverThroughAgent hands the pending files of (user, app) to a
// lingering one-off taken back by a new connection: the platform takes
// uploads only before the attach, so they go through the agent's sftp
// subsystem into /tmp/uploads, as a new one-off would have them. They
// leave the staging area once written there; on a failure they stay
// pending, for the next new one-off, and the log says why.
func (s *Server) deliverThroughAgent(sess *session, ac *agentConn) {
	up := s.deps.Deliverer
	if up == nil {
		return
	}
	ch, reqs, err := ac.conn.OpenChannel("session", nil)
	if err != nil {
		sess.log.Warn("pending uploads stay pending: no session to the lingering one-off", "err", err)
		return
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	if ok, err := ch.SendRequest("subsystem", true, gossh.Marshal(&stringMsg{"sftp"})); err != nil || !ok {
		sess.log.Warn("pending uploads stay pending: the lingering one-off refused sftp", "err", err)
		return
	}
	client, err := sftp.NewClientPipe(ch, ch)
	if err != nil {
		sess.log.Warn("pending uploads stay pending: sftp to the lingering one-off", "err", err)
		return
	}
	defer client.Close()
	send := func(ctx context.Context, name string, size int64, r io.Reader) error {
		target := path.Join(uploadsDir, name)
		if err := client.MkdirAll(path.Dir(target)); err != nil {
			return fmt.Errorf("mkdir %s: %w", path.Dir(target), err)
		}
		f, err := client.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.CopyN(f, r, size); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	d, err := up.Deliver(sess.ctx, sess.identity(), sess.app, send, nil)
	if err != nil {
		sess.log.Warn("pending uploads stay pending: delivery to the lingering one-off failed", "err", err)
		return
	}
	if err := d.Commit(); err != nil {
		sess.log.Warn("delivered uploads stay pending", "files", len(d.Files()), "err", err)
		return
	}
	if n := len(d.Files()); n > 0 {
		sess.log.Info("pending uploads delivered to the lingering one-off", "files", n)
	}
}

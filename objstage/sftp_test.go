package objstage

import (
	"bytes"
	"context"
	"net"
	"os"
	"testing"

	pkgsftp "github.com/pkg/sftp"

	"sshbridge/sftp"
	"sshbridge/uploads"
)

// sftpSession serves the SFTP subsystem over f on a loopback connection
// and returns pkg/sftp's client of it.
func sftpSession(t *testing.T, f uploads.Files) *pkgsftp.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- sftp.Serve(context.Background(), c, f, sftp.Options{})
		c.Close()
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Many concurrent writes: the server sees them out of order.
	c, err := pkgsftp.NewClientPipe(conn, conn, pkgsftp.UseConcurrentWrites(true), pkgsftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
		<-done
	})
	return c
}

// An SFTP upload through one bridge, with concurrent (out-of-order)
// writes, is pending on another and delivered from it with the same
// bytes; a rename after the upload (as IDEs and rclone do) works.
func TestSFTPUploadThenDeliverElsewhere(t *testing.T) {
	ep, bucket := newBucket(t)
	a, b := open(t, ep, bucket, opts{}), open(t, ep, bucket, opts{})
	c := sftpSession(t, a.Files("alice", "app"))
	data := randBytes(t, 33<<20+777)
	f, err := c.OpenFile("/tmp/uploads/up.partial", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.PosixRename("/tmp/uploads/up.partial", "/tmp/uploads/up.bin"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stat("/tmp/uploads/up.bin")
	if err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("stat: %v, %v", st, err)
	}
	var got collect
	d, err := b.Files("alice", "app").DeliverFiles(context.Background(), got.send, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.files["up.bin"], data) {
		t.Fatalf("delivered %d bytes, want %d", len(got.files["up.bin"]), len(data))
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if es, err := c.ReadDir("/tmp/uploads"); err != nil || len(es) != 0 {
		t.Fatalf("ls after delivery: %v, %v", es, err)
	}
}

package bridge

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// openSSHCiphers is OpenSSH 9's default cipher list, both ways.
var openSSHCiphers = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com"

// kexInitPacket is a client's KEXINIT (RFC 4253 section 7.1) with the
// given encryption name-lists, as an unencrypted binary packet (section 6).
func kexInitPacket(c2s, s2c string) []byte {
	payload := []byte{msgKexInit}
	payload = append(payload, make([]byte, 16)...) // the cookie
	for _, list := range []string{"curve25519-sha256", "ssh-ed25519", c2s, s2c,
		"hmac-sha2-256-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "none", "none", "", ""} {
		payload = binary.BigEndian.AppendUint32(payload, uint32(len(list)))
		payload = append(payload, list...)
	}
	payload = append(payload, 0, 0, 0, 0, 0) // first_kex_packet_follows, reserved
	padding := 8 - (5+len(payload))%8
	if padding < 4 {
		padding += 8
	}
	packet := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)+padding))
	packet = append(packet, byte(padding))
	packet = append(packet, payload...)
	return append(packet, make([]byte, padding)...)
}

// serverProposal connects to addr, sends the client's side (sent, written
// at once) and returns the ciphers of the server's KEXINIT, both ways.
func serverProposal(t *testing.T, addr string, sent []byte) (c2s, s2c []string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(sent); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	version, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(version, "SSH-2.0-") {
		t.Fatalf("server version line %q, %v", version, err)
	}
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, binary.BigEndian.Uint32(head)-1)
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatal(err)
	}
	c2s, s2c, ok := kexInitCiphers(rest[:len(rest)-int(head[4])])
	if !ok {
		t.Fatalf("the server's first packet is no KEXINIT: %x", rest)
	}
	return c2s, s2c
}

// The bridge proposes AES-GCM alone to a client that offers it both ways,
// so that OpenSSH's client, whose own order puts AES-CTR first, takes
// AES-GCM; any other client gets the whole list and its own choice.
func TestCiphersProposedFollowTheClientsKexInit(t *testing.T) {
	b := startBridge(t, Config{}, &fakePlatform{}, nil, "")
	version := "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
	for _, tc := range []struct {
		name     string
		sent     []byte
		proposed []string
	}{
		{"OpenSSH's defaults", append([]byte(version), kexInitPacket(openSSHCiphers, openSSHCiphers)...), aeadCiphers},
		{"AES-256-GCM alone", append([]byte(version), kexInitPacket("aes256-gcm@openssh.com", "aes256-gcm@openssh.com")...), aeadCiphers},
		{"AES-CTR alone (ssh -c aes128-ctr, Paramiko before 3.5)", append([]byte(version), kexInitPacket("aes128-ctr", "aes128-ctr")...), ciphers},
		{"Dropbear's dbclient", append([]byte("SSH-2.0-dropbear_2022.83\r\n"), kexInitPacket("aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com", "aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com")...), ciphers},
		{"AES-GCM one way only", append([]byte(version), kexInitPacket(openSSHCiphers, "aes128-ctr")...), ciphers},
		{"lines before the version line", append([]byte("hello\r\nthere\r\n"+version), kexInitPacket(openSSHCiphers, openSSHCiphers)...), aeadCiphers},
		// x/crypto skips an SSH_MSG_IGNORE and waits for the KEXINIT.
		{"an IGNORE first", append([]byte(version), 0, 0, 0, 12, 10, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), ciphers},
		// Under x/crypto's 256 KiB, so that it waits for the rest.
		{"a length beyond what is read ahead", append([]byte(version), 0, 1, 0x86, 0xa0, 4), ciphers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c2s, s2c := serverProposal(t, b.addr, tc.sent)
			if !slices.Equal(c2s, tc.proposed) || !slices.Equal(s2c, tc.proposed) {
				t.Fatalf("the server proposed %v and %v, want %v both ways", c2s, s2c, tc.proposed)
			}
		})
	}
}

// waitingClientConn is a client's connection that holds back the
// client's KEXINIT until the server's has come: x/crypto's client writes
// its version line, reads the server's a byte at a time, then reads
// packets in larger reads.
type waitingClientConn struct {
	net.Conn
	writes int
	once   sync.Once
	seen   chan struct{}
}

func (c *waitingClientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if len(p) > 1 && n > 0 {
		c.once.Do(func() { close(c.seen) })
	}
	return n, err
}

func (c *waitingClientConn) Write(p []byte) (int, error) {
	if c.writes++; c.writes > 1 {
		<-c.seen
	}
	return c.Conn.Write(p)
}

// A client that sends its KEXINIT only once it has the server's is waited
// for clientKexInitWait, then gets the whole list, and its connection
// works as any other.
func TestClientWaitingForTheServersKexInit(t *testing.T) {
	wait := clientKexInitWait.Swap(int64(300 * time.Millisecond))
	t.Cleanup(func() { clientKexInitWait.Store(wait) })
	b := startBridge(t, Config{}, &fakePlatform{oneOff: func() *fakeOneOff { return &fakeOneOff{prog: echo(3)} }}, nil, "")
	start := time.Now()
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bridge that never sends its KEXINIT fails the test
	wc := &waitingClientConn{Conn: conn, seen: make(chan struct{})}
	sc, chans, reqs, err := gossh.NewClientConn(wc, b.addr, &gossh.ClientConfig{
		User:            "demo-app",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(b.userKey)},
		HostKeyCallback: gossh.FixedHostKey(b.hostKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := gossh.NewClient(sc, chans, reqs)
	defer c.Close()
	conn.SetDeadline(time.Time{})
	if took, waited := time.Since(start), time.Duration(clientKexInitWait.Load()); took < waited {
		t.Fatalf("the handshake took %v: the client's KEXINIT cannot have been waited for %v", took, waited)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s.Stdin = strings.NewReader("hello")
	out, err := s.Output("cat")
	if exitCode(t, err) != 3 || string(out) != "hello" {
		t.Fatalf("exec after a late KEXINIT: %q, %v", out, err)
	}
}

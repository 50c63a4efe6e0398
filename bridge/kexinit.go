package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// The bridge proposes AES-GCM alone to a client that offers it.
//
// In SSH the client's order decides the cipher (RFC 4253 section 7.1): the
// first of the client's list that the server offers. OpenSSH's client lists
// chacha20-poly1305, then AES-CTR, then AES-GCM, so against a server
// offering both it takes aes128-ctr with an HMAC. x/crypto runs AES-GCM in
// assembly on both sides of the packet, where AES-CTR pays for a separate
// HMAC-SHA-256 over every byte: a 1 GiB `sftp put` through the bridge runs
// about 30% faster under aes128-gcm@openssh.com, on the bridge's CPU and the
// client's alike (BENCHMARKS.md, "sftp put: the cipher"). The server can
// steer the choice only by what it offers, so the bridge reads the client's
// KEXINIT before sending its own: when the client offers an AES-GCM cipher
// both ways, the bridge offers only its AES-GCM ciphers, and the client's
// first of those is taken; otherwise it offers its whole list. A client
// that asks for AES-CTR alone (Dropbear's dbclient, Paramiko before 3.5,
// `ssh -c aes128-ctr`) gets it as before.
//
// RFC 4253 section 7.1 has each side send its KEXINIT without waiting for
// the other's, and OpenSSH, PuTTY, Dropbear, Paramiko, AsyncSSH and
// x/crypto all do. A client that waits for the server's KEXINIT first
// (SSH.NET before 2023.0.1) is waited for at most clientKexInitWait, then
// gets the whole list.
//
// The price is one round trip per connection: OpenSSH's client sends its
// KEXINIT once it has the server's version line, and the server's KEXINIT
// now leaves only once the client's has come, where before the two
// crossed.

// clientKexInitWait is how long the bridge waits, after its version line,
// for the client's version line and KEXINIT before it proposes its whole
// list of ciphers without having seen the client's (nanoseconds; an
// atomic, so that tests may change it while other handshakes run).
var clientKexInitWait atomic.Int64

func init() { clientKexInitWait.Store(int64(500 * time.Millisecond)) }

const (
	// maxSniffedVersion bounds what is read before the client's version
	// line ends: x/crypto's own limit of one line (RFC 4253 section 4.2:
	// 255 bytes), and a few lines before it.
	maxSniffedVersion = 4 << 10
	// maxKexInitPacket bounds the KEXINIT packet read ahead; OpenSSH's is
	// under 2 KiB. A longer one is left to x/crypto (up to its 256 KiB).
	maxKexInitPacket = 64 << 10
	msgKexInit       = 20
)

// aeadCiphers are the bridge's ciphers proposed alone to a client that
// offers one of them both ways.
var aeadCiphers = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM}

// kexInitConn is the connection x/crypto's server runs on once the bridge
// has sent its version line and read ahead the client's version line and
// KEXINIT: it gives the bytes read ahead first, and drops x/crypto's own
// write of the version line, which is already sent.
type kexInitConn struct {
	net.Conn
	ahead   []byte // read from the client, not yet given to x/crypto
	version []byte // the version line sent, with its CRLF; nil once x/crypto has written it
}

func (c *kexInitConn) Read(p []byte) (int, error) {
	if c.ahead != nil {
		n := copy(p, c.ahead)
		if c.ahead = c.ahead[n:]; len(c.ahead) == 0 {
			c.ahead = nil // the connection keeps none of it
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write drops x/crypto's version line, the first write of the handshake
// (exchangeVersions writes it whole, before any packet).
func (c *kexInitConn) Write(p []byte) (int, error) {
	if c.version != nil {
		v := c.version
		c.version = nil
		if !bytes.Equal(p, v) {
			return 0, errors.New("bridge: the handshake's first write is not the version line already sent")
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// readClientKexInit sends version (the server's version line, without its
// CRLF) on cc and reads the client's version line and KEXINIT, waiting at
// most clientKexInitWait. It returns the connection for x/crypto's server,
// which replays what was read, and the ciphers to propose: aeadCiphers
// when the client's KEXINIT offers one of them both ways, else all the
// bridge's. An error means the client is gone or the connection failed;
// what the client sent that is not a version line and a KEXINIT is left
// for x/crypto to refuse, with the whole list proposed.
func readClientKexInit(cc *coalescingConn, version string) (net.Conn, []string, error) {
	line := []byte(version + "\r\n")
	if _, err := cc.Write(line); err != nil {
		return nil, nil, err
	}
	kc := &kexInitConn{Conn: cc, version: line}
	// Read below cc: a read deadline there is not a failed connection.
	if err := cc.Conn.SetReadDeadline(time.Now().Add(time.Duration(clientKexInitWait.Load()))); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 0, 2048)
	var payload []byte
	for {
		var done bool
		payload, done = kexInitPayload(buf)
		if done {
			break
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf))
		}
		n, err := cc.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // the client waits for the server's KEXINIT
			}
			return nil, nil, err
		}
	}
	if err := cc.Conn.SetReadDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	if len(buf) > 0 {
		kc.ahead = slices.Clone(buf) // what was read, not the buffer grown for it
	}
	c2s, s2c, ok := kexInitCiphers(payload)
	if ok && offersAny(c2s, aeadCiphers) && offersAny(s2c, aeadCiphers) {
		return kc, aeadCiphers, nil
	}
	return kc, ciphers, nil
}

// kexInitPayload finds in b the client's version line (RFC 4253 section
// 4.2: lines before one starting with "SSH-" are skipped) and the binary
// packet after it (section 6), and returns the packet's payload when it is
// a KEXINIT. done is false while more bytes are needed, true once b holds
// the packet or can never hold one this reading bounds (payload nil then).
func kexInitPayload(b []byte) (payload []byte, done bool) {
	rest := b
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, len(b) >= maxSniffedVersion
		}
		line := rest[:i]
		rest = rest[i+1:]
		if bytes.HasPrefix(line, []byte("SSH-")) {
			break
		}
		if len(b)-len(rest) >= maxSniffedVersion {
			return nil, true
		}
	}
	if len(rest) < 5 {
		return nil, false
	}
	length := binary.BigEndian.Uint32(rest)
	padding := uint32(rest[4])
	if length > maxKexInitPacket || padding+1 > length {
		return nil, true
	}
	if uint32(len(rest)-4) < length {
		return nil, false
	}
	payload = rest[5 : 4+length-padding]
	if len(payload) == 0 || payload[0] != msgKexInit {
		return nil, true
	}
	return payload, true
}

// kexInitCiphers reads the two encryption name-lists of a KEXINIT payload
// (RFC 4253 section 7.1: the message number, a 16-byte cookie, then the
// name-lists of key exchange, host key, and client-to-server and
// server-to-client encryption). ok is false when the payload is too short.
func kexInitCiphers(payload []byte) (c2s, s2c []string, ok bool) {
	if len(payload) < 17 {
		return nil, nil, false
	}
	p := payload[17:]
	var lists [4][]string
	for i := range lists {
		if len(p) < 4 {
			return nil, nil, false
		}
		n := binary.BigEndian.Uint32(p)
		if uint32(len(p)-4) < n {
			return nil, nil, false
		}
		if n > 0 {
			lists[i] = splitNameList(p[4 : 4+n])
		}
		p = p[4+n:]
	}
	return lists[2], lists[3], true
}

func splitNameList(b []byte) []string {
	var names []string
	for name := range bytes.SplitSeq(b, []byte(",")) {
		names = append(names, string(name))
	}
	return names
}

// offersAny says whether the client's list names any of want.
func offersAny(client, want []string) bool {
	return slices.ContainsFunc(client, func(name string) bool { return slices.Contains(want, name) })
}

package platform

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// peerPollInterval is how often a half-closed local client is looked at.
const peerPollInterval = 200 * time.Millisecond

// peerState is what this host's TCP table says of a client's socket.
type peerState int

const (
	peerUnknown peerState = iota // the table cannot be read
	peerAbsent                   // not in the table: remote, or long gone
	peerOpen                     // a socket its owner still holds (half-closed at most)
	peerClosed                   // closed by its owner, the kernel finishing it
)

// watchLocalPeer kills the one-off when a client on this host that
// half-closed (stdin EOF in pipe mode) closes its socket altogether: a FIN
// cannot tell the two apart on the wire, but the host's TCP table can, as a
// socket its program has closed has no inode left. The embedded platform's
// usual client, the bridge, is on this host. Remote clients are left alone.
func (o *oneOff) watchLocalPeer(proc *process, conn net.Conn) {
	local, ok1 := conn.LocalAddr().(*net.TCPAddr)
	remote, ok2 := conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return
	}
	t := time.NewTicker(peerPollInterval)
	defer t.Stop()
	for first := true; ; first = false {
		switch lookupPeer(remote, local) {
		case peerUnknown:
			return
		case peerAbsent:
			if first {
				return // a client elsewhere: the table says nothing of it
			}
			fallthrough
		case peerClosed:
			o.log.Info("client closed its half-closed stream, killing the one-off")
			o.end(endClientGone)
			return
		}
		select {
		case <-proc.done:
			return
		case <-t.C:
		}
	}
}

// lookupPeer finds the socket bound to peer and connected to us in
// /proc/net/tcp{,6}.
func lookupPeer(peer, us *net.TCPAddr) peerState {
	file, want := "/proc/net/tcp", hexAddr(peer)+" "+hexAddr(us)
	if peer.IP.To4() == nil {
		file = "/proc/net/tcp6"
	}
	f, err := os.Open(file)
	if err != nil {
		return peerUnknown
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(want)) {
			continue
		}
		// sl local rem st queues tr retrnsmt uid timeout inode
		fields := strings.Fields(string(line))
		if len(fields) < 10 || fields[1]+" "+fields[2] != want {
			continue
		}
		if fields[9] == "0" {
			return peerClosed
		}
		return peerOpen
	}
	return peerAbsent
}

// hexAddr writes an address as /proc/net/tcp does: the IP as 32-bit words
// in host byte order, the port big-endian.
func hexAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		ip = a.IP.To16()
	}
	var b strings.Builder
	for i := 0; i+4 <= len(ip); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(ip[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", a.Port)
	return b.String()
}

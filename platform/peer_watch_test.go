package platform

import (
	"net"
	"testing"
)

func TestLookupPeer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	us, peer := server.LocalAddr().(*net.TCPAddr), server.RemoteAddr().(*net.TCPAddr)
	if got := lookupPeer(peer, us); got != peerOpen {
		t.Fatalf("open client: %v", got)
	}
	client.(*net.TCPConn).CloseWrite()
	if got := lookupPeer(peer, us); got != peerOpen {
		t.Errorf("half-closed client: %v", got)
	}
	client.Close()
	if got := lookupPeer(peer, us); got != peerClosed && got != peerAbsent {
		t.Errorf("closed client: %v", got)
	}
	elsewhere := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}
	if got := lookupPeer(elsewhere, us); got != peerAbsent {
		t.Errorf("remote client: %v", got)
	}
}

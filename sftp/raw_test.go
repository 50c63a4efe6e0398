package sftp

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"sshbridge/uploads"
)

// rawPacket frames one SFTP packet: length, type, payload.
func rawPacket(typ byte, fields ...any) []byte {
	var payload []byte
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			payload = binary.BigEndian.AppendUint32(payload, v)
		case string:
			payload = binary.BigEndian.AppendUint32(payload, uint32(len(v)))
			payload = append(payload, v...)
		case []byte:
			payload = append(payload, v...)
		}
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+1))
	out = append(out, typ)
	return append(out, payload...)
}

func readRaw(t *testing.T, c net.Conn) (byte, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read: %v", err)
	}
	return hdr[4], body
}

// Malformed attributes from a client get an error status; the server lives on.
func TestMalformedRequestsDoNotCrash(t *testing.T) {
	sc := newStore(t, uploads.Limits{}).Scope("u", "a")
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
		defer c.Close()
		done <- Serve(t.Context(), c, sc, Options{})
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close(); <-done }()
	const (
		fxpInit, fxpVersion, fxpOpen, fxpSetstat, fxpStatus, fxpStat, fxpAttrs = 1, 2, 3, 9, 101, 17, 105
	)
	c.Write(rawPacket(fxpInit, uint32(3)))
	if typ, _ := readRaw(t, c); typ != fxpVersion {
		t.Fatalf("init answered %d", typ)
	}
	// SETSTAT announcing permissions and size but carrying no bytes.
	c.Write(rawPacket(fxpSetstat, uint32(1), "x", uint32(0x1|0x4)))
	if typ, body := readRaw(t, c); typ != fxpStatus || binary.BigEndian.Uint32(body[4:]) == 0 {
		t.Fatalf("malformed setstat answered %d %q", typ, body)
	}
	// OPEN for writing with odd attribute bytes.
	c.Write(rawPacket(fxpOpen, uint32(2), "f", uint32(0x2|0x8), uint32(0x4|0x2), []byte{1, 2, 3}))
	readRaw(t, c)
	c.Write(rawPacket(fxpStat, uint32(3), "."))
	if typ, _ := readRaw(t, c); typ != fxpAttrs {
		t.Fatalf("stat after malformed requests answered %d", typ)
	}
}

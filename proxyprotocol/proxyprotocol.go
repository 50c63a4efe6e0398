package proxyprotocol

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// DefaultReadHeaderTimeout is how long a connection from an allowed
// address has to send its header when Config.ReadHeaderTimeout is zero.
// Balancers send it at once on connecting (HAProxy), or with the client's
// first bytes (which an SSH client sends at once, RFC 4253 section 4.2).
const DefaultReadHeaderTimeout = 10 * time.Second

// Config configures a Listener.
type Config struct {
	// From are the addresses that must open every connection with a
	// header; no other address may send one. Empty: none may, so every
	// connection that opens with a header is closed.
	From []netip.Prefix
	// ReadHeaderTimeout bounds the wait for the header of a connection
	// from an address in From, so that a silent one cannot hold its
	// socket. Zero: DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// Logger receives one line for each connection closed for its
	// header, with its remote address ("remote") and why. Nil discards.
	Logger *slog.Logger
}

// ParseFrom reads a list of IPv4 and IPv6 addresses and CIDR blocks
// ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"); an address alone is a
// block of one. A block with host bits set, or anything else, is an error
// that names the item when the list has more than one.
func ParseFrom(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range list {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parseBlock(item)
		if err != nil {
			if len(list) > 1 {
				err = fmt.Errorf("%q: %w", item, err)
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseBlock(item string) (netip.Prefix, error) {
	if !strings.Contains(item, "/") {
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not an IP address or CIDR block")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(item)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR block")
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("host bits set: the block is %s", p.Masked())
	}
	return p, nil
}

// Allowed says whether addr (a *net.TCPAddr, or anything whose String is
// host:port) is in one of the blocks of from. An IPv4-mapped IPv6 address
// counts as its IPv4 address.
func Allowed(from []netip.Prefix, addr net.Addr) bool {
	ip, ok := ipOf(addr)
	if !ok {
		return false
	}
	for _, p := range from {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func ipOf(addr net.Addr) (netip.Addr, bool) {
	if t, ok := addr.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(t.IP)
		return ip.Unmap(), ok
	}
	if addr == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// WriteLocal writes a version 2 header with the LOCAL command, which says
// the connection is the sender's own (a health check) and carries no
// client address.
func WriteLocal(w io.Writer) error {
	h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	_, err := h.WriteTo(w)
	return err
}

// Listener wraps a listener whose connections may open with a PROXY
// protocol header. Its Accept returns a *Conn at once, before any header
// is read: the header is read by Conn.ReadHeader, or at the first Read.
type Listener struct {
	net.Listener
	cfg Config
	log *slog.Logger
}

// NewListener wraps ln; closing the Listener closes ln.
func NewListener(ln net.Listener, cfg Config) *Listener {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, cfg: cfg, log: log}
}

// Accept waits for the next connection and wraps it; its errors are the
// wrapped listener's.
func (l *Listener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &Conn{Conn: raw, log: l.log, timeout: l.cfg.ReadHeaderTimeout}
	c.required = Allowed(l.cfg.From, raw.RemoteAddr())
	policy := proxyproto.REJECT
	if c.required {
		policy = proxyproto.REQUIRE
	}
	c.pc = proxyproto.NewConn(raw, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(l.cfg.ReadHeaderTimeout))
	return c, nil
}

// Conn is a connection accepted by a Listener. Its RemoteAddr is the
// client's address from the header, once read, and otherwise the address
// of the socket's peer. It is safe for one reader and one writer at a
// time, as a net.Conn.
type Conn struct {
	net.Conn // the accepted socket
	pc       *proxyproto.Conn
	required bool // the peer is in Config.From: a header is required
	timeout  time.Duration
	log      *slog.Logger

	once   sync.Once
	err    error    // why the header was refused
	client net.Addr // the client's address from the header; nil: none
}

// ErrHeader is wrapped by the errors of a connection closed for its
// PROXY protocol header.
var ErrHeader = errors.New("PROXY protocol header refused")

// HeaderRequired says whether the peer is an address allowed to send a
// header, which must then send one.
func (c *Conn) HeaderRequired() bool { return c.required }

// ReadHeader reads the header of a connection from an allowed address,
// waiting at most the header read timeout, and returns an error wrapping
// ErrHeader (and logs it) when there is none, it is malformed, or it came
// late; the connection should then be closed. From any other address it
// returns nil at once: such a connection is checked at its first Read,
// which fails if it opens with a header, so that the bridge's
// identification string is not held back for a client that waits for it.
func (c *Conn) ReadHeader() error {
	if !c.required {
		return nil
	}
	c.once.Do(c.readHeader)
	return c.err
}

func (c *Conn) readHeader() {
	// A zero-length Read makes go-proxyproto read the header and returns
	// its error; it reads nothing of what follows the header.
	_, err := c.pc.Read(nil)
	if err != nil {
		c.refuse(err)
		return
	}
	h := c.pc.ProxyHeader()
	if h == nil || !h.Command.IsProxy() {
		return
	}
	if src, ok := h.SourceAddr.(*net.TCPAddr); ok {
		c.client = src
	}
}

// refuse records and logs why the connection's header is refused.
func (c *Conn) refuse(err error) {
	var why string
	switch {
	case errors.Is(err, proxyproto.ErrSuperfluousProxyHeader):
		why = "a PROXY protocol header from an address not allowed to send one"
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		why = fmt.Sprintf("no PROXY protocol header (within %s) from an address that must send one", c.timeout)
	default:
		why = fmt.Sprintf("a bad PROXY protocol header: %v", err)
	}
	c.err = fmt.Errorf("%w: %s", ErrHeader, why)
	c.log.Warn("connection closed: "+why, "remote", c.Conn.RemoteAddr().String())
}

// Local says whether the header carried no client address: a version 2
// LOCAL command (a balancer's health check) or version 1's UNKNOWN. The
// connection is then the balancer's own, and RemoteAddr the balancer's.
// False before ReadHeader, and for a peer not allowed to send a header.
func (c *Conn) Local() bool {
	if !c.required {
		return false
	}
	c.once.Do(c.readHeader)
	return c.err == nil && c.client == nil
}

// RemoteAddr is the client's address given by the header, when one was
// read and carried it; otherwise the socket's peer.
func (c *Conn) RemoteAddr() net.Addr {
	if c.required {
		c.once.Do(c.readHeader)
		if c.client != nil {
			return c.client
		}
	}
	return c.Conn.RemoteAddr()
}

// Via is the balancer's address when RemoteAddr is the client's from the
// header; nil otherwise.
func (c *Conn) Via() net.Addr {
	if !c.required {
		return nil
	}
	c.once.Do(c.readHeader)
	if c.client == nil {
		return nil
	}
	return c.Conn.RemoteAddr()
}

// Read reads what follows the header. Its first call reads the header
// first; an error about the header (wrapping ErrHeader) is returned by
// every call.
func (c *Conn) Read(b []byte) (int, error) {
	if c.required {
		if err := c.ReadHeader(); err != nil {
			return 0, err
		}
		return c.pc.Read(b)
	}
	n, err := c.pc.Read(b)
	if errors.Is(err, proxyproto.ErrSuperfluousProxyHeader) {
		c.once.Do(func() { c.refuse(err) })
		return n, c.err
	}
	return n, err
}

// Write writes to the socket. For a peer that must send a header it waits
// for the header first, so that nothing is sent to a connection that will
// be refused; any other peer is written to at once.
func (c *Conn) Write(b []byte) (int, error) {
	if c.required {
		if err := c.ReadHeader(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// Socket is the accepted socket. Once ReadHeader returned nil, writing to
// it is what Write does; a writer that needs the socket's own type (as
// net.Buffers does for writev) may write there.
func (c *Conn) Socket() net.Conn { return c.Conn }

// SetDeadline, SetReadDeadline: through go-proxyproto, which keeps them
// to restore after its own deadline for the header.

func (c *Conn) SetDeadline(t time.Time) error     { return c.pc.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error { return c.pc.SetReadDeadline(t) }

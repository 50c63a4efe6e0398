package auth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Forwarding policy of a Grant, for the forwarding served inside a
// connection-mode one-off. It is the policy of OpenSSH's sshd for the
// key's options (sshd(8) AUTHORIZED_KEYS FILE FORMAT: no-port-forwarding,
// restrict, permitopen, permitlisten) with sshd_config's GatewayPorts no,
// and one deliberate difference: the container's own loopback is always a
// forwarding target (see CheckOpen).

// maxHostLen is sshd's bound on a permitopen or permitlisten host
// (NI_MAXHOST, 1025 with its NUL).
const maxHostLen = 1024

// errNoPortForwarding is the refusal of every forwarding to a key with
// no-port-forwarding or restrict (or a certificate without
// permit-port-forwarding).
var errNoPortForwarding = errors.New("port forwarding is not allowed for this key " +
	"(its authorized_keys line has no-port-forwarding or restrict, or its certificate lacks permit-port-forwarding)")

// permit is one permitopen or permitlisten entry: host (brackets removed)
// and port, 0 for "*" (any port).
type permit struct {
	host string
	port uint32 // 0: any
	// bare is a permitlisten entry written as a port alone.
	bare bool
}

// parsePermit reads a permitopen ("host:port") or, with listen, a
// permitlisten ("[host:]port") value as sshd does (auth-options.c
// handle_permit): an IPv6 host in brackets ("[::1]:22"), a port of 1 to
// 65535 or "*" for any; a permitlisten port alone stands for "*:port".
// Unlike sshd it takes no service names ("http") for ports, and no empty
// host.
func parsePermit(v string, listen bool) (permit, error) {
	var p permit
	if listen && !strings.Contains(v, ":") {
		p.bare = true
		v = "*:" + v
	}
	var host, port string
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 || end+1 >= len(v) || v[end+1] != ':' {
			return p, errors.New(`a bracketed host must be followed by ":port", as in "[::1]:22"`)
		}
		host, port = v[1:end], v[end+2:]
	} else {
		var ok bool
		host, port, ok = strings.Cut(v, ":")
		if !ok {
			return p, errors.New(`want "host:port"`)
		}
		if strings.Contains(port, ":") {
			return p, errors.New(`an IPv6 host goes in brackets, as in "[::1]:22"`)
		}
	}
	if host == "" || len(host) > maxHostLen {
		return p, errors.New("bad host")
	}
	p.host = host
	if port == "*" {
		return p, nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return p, fmt.Errorf(`bad port %q (want 1 to 65535, or "*" for any)`, port)
	}
	p.port = uint32(n)
	return p, nil
}

func (p permit) allowsPort(port uint32) bool { return p.port == 0 || p.port == port }

// isLoopbackHost tells a host that names the loopback: "localhost" (any
// case), an address of 127.0.0.0/8 or ::1 (IPv4-mapped included). Other
// names, which a resolver could map anywhere, are not.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// CheckOpen says whether this key may open a forwarding channel to
// host:port: "direct-tcpip" (RFC 4254 section 7.2), which ssh's -L, -D and
// -W send. nil allows it; otherwise the error is one sentence for the
// user saying what was refused and why.
//
// Refused when the key has no-port-forwarding, or restrict without a later
// port-forwarding, or is a certificate without the
// permit-port-forwarding extension, as sshd; and when port is 0 or above
// 65535. Otherwise a loopback target is allowed: "localhost" (any case),
// 127.0.0.0/8 or ::1, which inside a one-off is the container's own. Any
// other host is allowed only when a permitopen entry matches it: its port
// equal or "*", its host "*" or equal to host. As in sshd the host is
// compared literally (no pattern, no name lookup: permitopen="db:5432"
// does not allow 10.0.0.5:5432 even if db resolves to it), except that
// the comparison ignores case, as DNS names do, where sshd's is exact.
//
// Unlike sshd, where a key with permitopen may open only what its entries
// name, the container's loopback stays allowed with permitopen entries:
// reaching the container's own servers is what forwarding in connection
// mode is for, and permitopen only adds targets beyond it.
func (g *Grant) CheckOpen(host string, port uint32) error {
	if g.NoPortForwarding {
		return errNoPortForwarding
	}
	target := net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
	if port == 0 || port > 65535 {
		return fmt.Errorf("forwarding to %s is not possible: the port must be 1 to 65535", target)
	}
	if isLoopbackHost(host) {
		return nil
	}
	for _, v := range g.PermitOpen {
		p, err := parsePermit(v, false)
		if err != nil {
			continue // checked at load; never here
		}
		if p.allowsPort(port) && (p.host == "*" || strings.EqualFold(p.host, host)) {
			return nil
		}
	}
	return fmt.Errorf(`forwarding to %s is not allowed for this key: only the container's loopback (localhost, 127.0.0.1, ::1), or a target named by a permitopen="host:port" option`, target)
}

// CheckListen says whether this key may have a listener on host:port,
// "tcpip-forward" (RFC 4254 section 7.1), which ssh's -R sends, and where
// it binds. host is the request's address to bind: ssh sends "localhost"
// for -R without an address and "" for "*". port 0 asks for a port the
// listener picks. On success bind is the address to listen on:
//
//   - "localhost": the loopback, both 127.0.0.1 and ::1 where the
//     container has them (OpenSSH with GatewayPorts no listens on every
//     loopback address "localhost" resolves to);
//   - "127.0.0.1" or "::1", when requested: kept, as sshd keeps them so
//     that a client may pick the address family;
//   - the requested host, when a permitlisten entry written with a host
//     ("host:port", "*:port") allows the request; "" (for a request of ""
//     or "*") then means every address.
//
// Every other request binds to "localhost", as sshd_config's GatewayPorts
// no does, whatever the requested host ("0.0.0.0", "", "*", a name).
//
// Refusals, with one sentence for the user: no-port-forwarding, restrict
// (without a later port-forwarding) or a certificate without
// permit-port-forwarding refuse every listener; a port above 65535. With
// no permitlisten entry, any host and port are allowed (bound as above),
// as sshd. With permitlisten entries, as sshd (channels.c
// check_rfwd_permission), only a request that an entry matches is
// allowed: the entry's port equal to port or "*" (so port 0 needs an entry
// with port "*"), and its host an OpenSSH pattern ('*' and '?') matching
// the requested host lowercased; a port alone ("8080") has the host "*".
// The match is on the host as requested, before the bind above: a key
// with permitlisten="localhost:8080" may not ask for 127.0.0.1:8080, as
// sshd(8) notes. The difference from sshd is what a matching entry with a
// host does: sshd with GatewayPorts no still binds to loopback, here the
// key's owner chose to let that address be used and it is kept (inside a
// one-off, the container's addresses); a port alone keeps loopback.
func (g *Grant) CheckListen(host string, port uint32) (bind string, err error) {
	if g.NoPortForwarding {
		return "", errNoPortForwarding
	}
	shown := host
	if shown == "" {
		shown = "*"
	}
	target := net.JoinHostPort(shown, strconv.FormatUint(uint64(port), 10))
	if port > 65535 {
		return "", fmt.Errorf("listening on %s is not possible: the port must be 0 (any) to 65535", target)
	}
	loopbackBind := "localhost"
	if host == "127.0.0.1" || host == "::1" {
		loopbackBind = host
	}
	if len(g.PermitListen) == 0 {
		return loopbackBind, nil
	}
	lower := strings.ToLower(host)
	allowed := false
	for _, v := range g.PermitListen {
		p, err := parsePermit(v, true)
		if err != nil {
			continue // checked at load; never here
		}
		if !p.allowsPort(port) || !wildcardMatch(p.host, lower) {
			continue
		}
		if p.bare {
			allowed = true // an entry with a host may still keep it
			continue
		}
		if host == "*" {
			return "", nil
		}
		return host, nil
	}
	if allowed {
		return loopbackBind, nil
	}
	return "", fmt.Errorf(`listening on %s is not allowed for this key: it may listen only where its permitlisten options say (%s)`,
		target, strings.Join(g.PermitListen, ", "))
}

// CheckOpenStreamlocal says whether this key may open a channel to the
// Unix socket at path, "direct-streamlocal@openssh.com" (OpenSSH's
// PROTOCOL section 2.4; ssh -L to a socket, VS Code's socket mode). As in
// sshd, it is refused only by what refuses all port forwarding
// (no-port-forwarding, restrict without a later port-forwarding, a
// certificate without permit-port-forwarding): permitopen does not apply
// to sockets. nil allows it; otherwise the error is one sentence for the
// user.
func (g *Grant) CheckOpenStreamlocal(path string) error {
	if g.NoPortForwarding {
		return errNoPortForwarding
	}
	return nil
}

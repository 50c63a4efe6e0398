package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"sshbridge/cli"
	"sshbridge/proxyprotocol"
)

// healthcheckFlags configures `bridge healthcheck`.
type healthcheckFlags struct {
	listen  string
	timeout time.Duration
	// The bridge's --proxy-protocol-from: a check from one of these
	// addresses opens with a PROXY protocol v2 LOCAL header.
	proxyProtocolFrom []string
	proxyFrom         []netip.Prefix
}

func healthcheckFlagSet(c *healthcheckFlags) *cli.FlagSet {
	fs := cli.NewFlagSet("bridge healthcheck")
	fs.String(&c.listen, "listen", listenEnv, "127.0.0.1:2222", "the bridge's listen address (an unspecified host such as 0.0.0.0 is checked on loopback)").Arg("ADDR")
	fs.Duration(&c.timeout, "timeout", "", 5*time.Second, "how long the bridge has to answer")
	fs.List(&c.proxyProtocolFrom, "proxy-protocol-from", proxyProtocolFromEnv, "the bridge's: when the check's own address is among them, it opens with a PROXY protocol v2 LOCAL header, as a load balancer's health check").
		Arg("CIDRS").Default("none").
		Check(func() (err error) { c.proxyFrom, err = proxyprotocol.ParseFrom(c.proxyProtocolFrom); return err })
	return fs
}

func writeHealthcheckUsage(w io.Writer) {
	var c healthcheckFlags
	fmt.Fprintln(w, "bridge healthcheck: exit 0 when the bridge at --listen answers with an SSH banner, else 1 (for a container HEALTHCHECK)")
	fmt.Fprintln(w)
	healthcheckFlagSet(&c).WriteUsage(w)
}

// runHealthcheck connects to the bridge and reads its SSH identification
// string (RFC 4253 section 4.2). It sends its own first, then closes: the
// bridge sees a client that gave up before the key exchange, which is not
// an authentication failure (noauth in the per-source penalties). When
// the bridge requires a PROXY protocol header from the address the check
// connects from, the check opens with a v2 LOCAL header, as a balancer's
// own health check does, which the bridge never penalises.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	var c healthcheckFlags
	if err := healthcheckFlagSet(&c).Parse(args); err != nil {
		return usageError(err, stdout, stderr, writeHealthcheckUsage)
	}
	addr := loopbackFor(c.listen)
	banner, err := readBanner(addr, c.timeout, c.proxyFrom)
	if err != nil {
		fmt.Fprintf(stderr, "bridge healthcheck: %s: %v\n", addr, err)
		return exitError
	}
	fmt.Fprintf(stdout, "ok: %s answered %q\n", addr, banner)
	return exitOK
}

// loopbackFor turns a listen address into one to dial: an unspecified
// host (":2222", "0.0.0.0:2222", "[::]:2222") is reached on loopback.
func loopbackFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// readBanner connects to addr and reads the SSH identification string;
// when its own address is in proxyFrom, it first sends a PROXY protocol v2
// LOCAL header.
func readBanner(addr string, timeout time.Duration, proxyFrom []netip.Prefix) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if proxyprotocol.Allowed(proxyFrom, conn.LocalAddr()) {
		if err := proxyprotocol.WriteLocal(conn); err != nil {
			return "", err
		}
	}
	if _, err := io.WriteString(conn, "SSH-2.0-bridge_healthcheck\r\n"); err != nil {
		return "", err
	}
	// A server may send other lines before its identification string
	// (RFC 4253 section 4.2); the string itself is at most 255 bytes.
	r := bufio.NewReaderSize(conn, 256)
	for range 16 {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("no SSH identification string: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "SSH-2.0-") {
			return line, nil
		}
	}
	return "", fmt.Errorf("no SSH identification string in the first lines")
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"sshbridge/cli"
)

// healthcheckFlags configures `bridge healthcheck`.
type healthcheckFlags struct {
	listen  string
	timeout time.Duration
}

func healthcheckFlagSet(c *healthcheckFlags) *cli.FlagSet {
	fs := cli.NewFlagSet("bridge healthcheck")
	fs.String(&c.listen, "listen", listenEnv, "127.0.0.1:2222", "the bridge's listen address (an unspecified host such as 0.0.0.0 is checked on loopback)").Arg("ADDR")
	fs.Duration(&c.timeout, "timeout", "", 5*time.Second, "how long the bridge has to answer")
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
// an authentication failure and does not count against the address.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	var c healthcheckFlags
	if err := healthcheckFlagSet(&c).Parse(args); err != nil {
		return usageError(err, stdout, stderr, writeHealthcheckUsage)
	}
	addr := loopbackFor(c.listen)
	banner, err := readBanner(addr, c.timeout)
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

func readBanner(addr string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
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

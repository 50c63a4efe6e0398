package oneoff

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// parseAttachURL checks an attach URL: http or https, a host, and a port;
// a missing port becomes the scheme's default (the protocol says the URL
// always carries one, the client does not insist). User info is dropped:
// the attach service is authenticated with the bearer token.
func parseAttachURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	port := ""
	switch u.Scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	default:
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		port = p
	}
	if !validPort(port) {
		return nil, fmt.Errorf("bad port %q", port)
	}
	u.Host = net.JoinHostPort(u.Hostname(), port)
	u.User = nil
	u.Fragment = ""
	u.RawFragment = ""
	if u.Opaque != "" {
		return nil, errors.New("opaque URL")
	}
	// The host is dialed as is and the URL is sent again: both must hold.
	if v, err := url.Parse(u.String()); err != nil || v.Host != u.Host {
		return nil, errors.New("does not survive a round trip")
	}
	return u, nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n < 65536
}

// requestTarget is the origin-form target of the attach URL, as the
// CONNECT request line carries it: "/<path>[?query]".
func requestTarget(u *url.URL) string {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// subURL is the attach URL with a path suffix ("/files", "/wait").
func subURL(u *url.URL, suffix string) string {
	v := *u
	v.Path = strings.TrimSuffix(u.Path, "/") + suffix
	if u.RawPath != "" {
		v.RawPath = strings.TrimSuffix(u.RawPath, "/") + suffix
	}
	return v.String()
}

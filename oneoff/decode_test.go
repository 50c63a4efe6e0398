package oneoff

import (
	"net/url"
	"testing"
	"time"
)

func TestDecodeWait(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
		ok   bool
	}{
		{`{"exit_code":0}`, 0, true},
		{`{"exit_code":137}`, 137, true},
		{`{"exit_code":"3"}`, 3, true},
		{`{"exit_code":" 127 "}`, 127, true},
		{`{"exit_code":3.0}`, 3, true},
		{`{"exit_code":1e2}`, 100, true},
		{`{"exit_code":2,"other":"x"}`, 2, true},
		{`{"exit_code":3.5}`, 0, false},
		{`{"exit_code":"x"}`, 0, false},
		{`{"exit_code":null}`, 0, false},
		{`{"exit_code":true}`, 0, false},
		{`{"exit_code":1e300}`, 0, false},
		{`{"code":1}`, 0, false},
		{`[1]`, 0, false},
		{``, 0, false},
	} {
		got, err := decodeWait([]byte(tc.body))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("decodeWait(%s) = %d, %v", tc.body, got, err)
		}
	}
}

func TestJWTExpiry(t *testing.T) {
	at := time.Unix(1900000000, 0)
	if got, err := jwtExpiry(makeJWT(at)); err != nil || !got.Equal(at) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, tok := range []string{"", "a.b", "a.b.c.d", "a.!!.c", "a.bnVsbA.c" /* null */, "a.e30.c" /* {} */} {
		if _, err := jwtExpiry(tok); err == nil {
			t.Errorf("jwtExpiry(%q) accepted", tok)
		}
	}
}

func TestParseAttachURL(t *testing.T) {
	for _, tc := range []struct{ in, host, target string }{
		{"http://127.0.0.1:4000/tok", "127.0.0.1:4000", "/tok"},
		{"http://h/tok", "h:80", "/tok"},
		{"HTTPS://h/tok?x=1#frag", "h:443", "/tok?x=1"},
		{"http://user:pw@[::1]:81/a%2Fb", "[::1]:81", "/a%2Fb"},
		{"http://h:81", "h:81", "/"},
	} {
		u, err := parseAttachURL(tc.in)
		if err != nil || u.Host != tc.host || requestTarget(u) != tc.target || u.User != nil {
			t.Errorf("parseAttachURL(%q) = %v, %v", tc.in, u, err)
		}
	}
	for _, bad := range []string{"", "ftp://h/x", "http:///x", "http://h:0/x", "http://h:70000/x", "mailto:x@y", "http://h:x/"} {
		if u, err := parseAttachURL(bad); err == nil {
			t.Errorf("parseAttachURL(%q) accepted: %v", bad, u)
		}
	}
	u, _ := parseAttachURL("http://h:1/tok/")
	if got := subURL(u, "/files"); got != "http://h:1/tok/files" {
		t.Errorf("subURL = %q", got)
	}
}

func TestDecodeRunAnswerPriority(t *testing.T) {
	api, _ := url.Parse("http://api:1/base")
	res, err := decodeRunAnswer([]byte(`{"operation":"op 1"}`), "", api, "my-app")
	if err != nil || res.operationURL != "http://api:1/base/v1/apps/my-app/operations/op%201" {
		t.Errorf("from id: %q, %v", res.operationURL, err)
	}
	res, err = decodeRunAnswer([]byte(`{"operation_url":"http://x:2/op","operation":"o"}`), "http://y:3/op", api, "a")
	if err != nil || res.operationURL != "http://x:2/op" {
		t.Errorf("body first: %q, %v", res.operationURL, err)
	}
}

package oneoff

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

// The decoders read answers from the network: whatever they get, they
// return a value or an error, never panic, and what they return is usable.

func FuzzDecodeRunAnswer(f *testing.F) {
	f.Add([]byte(`{"container":{"id":"c","label":"one-off-1","tty":false},"operation_url":"http://h:1/v1/apps/a/operations/o","operation":"o"}`), "")
	f.Add([]byte(`{"container":{}}`), "/v1/apps/a/operations/o")
	f.Add([]byte(`{"operation":"../../x?y#z"}`), "")
	f.Add([]byte(`{"operation_url":"javascript:alert(1)","operation":5}`), "http://[::1]:80/x")
	f.Add([]byte(`null`), "%zz")
	api, _ := url.Parse("http://127.0.0.1:8080/base")
	f.Fuzz(func(t *testing.T, body []byte, location string) {
		res, err := decodeRunAnswer(body, location, api, "app")
		if err != nil {
			return
		}
		u, err := url.Parse(res.operationURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Errorf("operation URL %q accepted", res.operationURL)
		}
	})
}

func FuzzDecodeOperation(f *testing.F) {
	f.Add([]byte(`{"operation":{"status":"done","start_one_off_data":{"attach_url":"http://h:1/t","container_id":"c","tty":false}}}`))
	f.Add([]byte(`{"operation":{"status":"error","error":"boom\u0000\n"}}`))
	f.Add([]byte(`{"operation":{"status":"pending","finished_at":null}}`))
	f.Add([]byte(`{"operation":{"status":"done","start_one_off_data":{"attach_url":"https://[::1]/t?x=1"}}}`))
	f.Add([]byte(`{"operation":{"status":"done","start_one_off_data":{"attach_url":"http://h:99999/t"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := decodeOperation(body)
		if err != nil {
			return
		}
		if st.status == "" {
			t.Error("empty status accepted")
		}
		if st.status == "done" {
			u := st.attachURL
			if u == nil || u.Port() == "" || (u.Scheme != "http" && u.Scheme != "https") {
				t.Errorf("attach URL %v accepted", u)
			}
			if _, err := strconv.Atoi(u.Port()); err != nil {
				t.Errorf("port %q accepted", u.Port())
			}
			if v, err := url.Parse(u.String()); err != nil || v.Host != u.Host {
				t.Errorf("attach URL %v does not round-trip", u)
			}
			_ = requestTarget(u)
			_ = subURL(u, "/wait")
		}
		for _, r := range st.message {
			if r < ' ' || r == 0x7f {
				t.Errorf("control character in message %q", st.message)
			}
		}
	})
}

func FuzzDecodeWait(f *testing.F) {
	for _, s := range []string{`{"exit_code":0}`, `{"exit_code":"137"}`, `{"exit_code":3.0}`, `{"exit_code":1e2,"x":[]}`,
		`{"exit_code":null}`, `{"exit_code":"NaN"}`, `{"exit_code":99999999999}`, `[]`, `{"exit_code":" -1 "}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, err := decodeWait(body)
		if err == nil && (code < -1<<31 || code > 1<<31-1) {
			t.Errorf("exit code %d out of range", code)
		}
	})
}

func FuzzDecodeTokenAnswer(f *testing.F) {
	f.Add([]byte(`{"token":"` + makeJWT(time.Unix(2000000000, 0)) + `"}`))
	f.Add([]byte(`{"token":"a.b.c"}`))
	f.Add([]byte(`{"token":"a.eyJleHAiOjF9.c\r\nX: y"}`))
	f.Add([]byte(`{"token":5}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, exp, err := decodeTokenAnswer(body)
		if err != nil {
			return
		}
		if tok == "" || exp.Before(time.Unix(0, 0)) {
			t.Errorf("token %q exp %v accepted", tok, exp)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] >= 0x7f {
				t.Errorf("token with byte %#x accepted", tok[i])
			}
		}
	})
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add(makeJWT(time.Unix(2000000000, 0)))
	f.Add("x.eyJleHAiOiIxNzAwMDAwMDAwIn0.y") // exp as a string
	f.Add("x.eyJleHAiOjEuNWUxMDB9.y")        // 1.5e100
	f.Add("x.eyJleHAiOi0xfQ==.y")            // -1, padded
	f.Add("...")
	f.Fuzz(func(t *testing.T, tok string) {
		exp, err := jwtExpiry(tok)
		if err == nil && (exp.Before(time.Unix(0, 0)) || exp.After(time.Unix(1e11+1, 0))) {
			t.Errorf("exp %v accepted", exp)
		}
	})
}

func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`{"errors":{"command":["can't be blank"]}}`))
	f.Add([]byte(`{"error":"x\u001b[2J"}`))
	f.Add([]byte("plain\x00text\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := errorMessage(body)
		if len([]rune(m)) > maxMessageRunes+1 {
			t.Errorf("message of %d runes", len([]rune(m)))
		}
		for _, r := range m {
			if r < ' ' || r == 0x7f {
				t.Errorf("control character in %q", m)
			}
		}
	})
}

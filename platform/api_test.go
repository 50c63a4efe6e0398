package platform

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTokenExchangeAndBearer(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	req, _ := http.NewRequest("POST", tp.base+"/v1/tokens/exchange", strings.NewReader("{}"))
	req.SetBasicAuth("", "tk-us-wrong")
	if status, body := tp.do(req); status != 401 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("exchange with a wrong token: %d %s", status, body)
	}
	// The JWT carries exp, as Scalingo's clients read it.
	parts := strings.Split(tp.token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tp.token)
	}
	var claims map[string]any
	raw, _ := jsonSegment(parts[1])
	if err := json.Unmarshal(raw, &claims); err != nil || claims["exp"] == nil {
		t.Errorf("claims %s: %v", raw, err)
	}
	good := tp.token
	for _, bad := range []string{"", "garbage", good + "x", parts[0] + "." + parts[1] + ".", testAPIToken} {
		tp.token = bad
		if status, v := tp.api("GET", "/v1/apps/demo", nil); status != 401 || v["error"] == nil {
			t.Errorf("bearer %q: %d %v", bad, status, v)
		}
	}
	tp.token = good
	if status, _ := tp.api("GET", "/v1/apps/demo", nil); status != 200 {
		t.Errorf("good bearer: %d", status)
	}
}

func TestExpiredToken(t *testing.T) {
	t.Parallel()
	s, err := newTokenSigner(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.issue("u")
	if err := s.verify(tok); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if err := s.verify(tok); err == nil {
		t.Error("expired token accepted")
	}
	other, _ := newTokenSigner(time.Minute)
	if err := other.verify(tok); err == nil {
		t.Error("token of another signer accepted")
	}
}

func TestAppNotFound(t *testing.T) {
	t.Parallel()
	want := map[string]any{"resource": "app", "error": "not found"}
	listed := startPlatform(t, Config{Apps: []string{"demo"}})
	for _, path := range []string{"/v1/apps/other", "/v1/apps/other/run"} {
		method := map[bool]string{true: "POST", false: "GET"}[strings.HasSuffix(path, "/run")]
		status, v := listed.api(method, path, map[string]any{"command": "true"})
		if status != 404 || !reflect.DeepEqual(v, want) {
			t.Errorf("%s %s: %d %v", method, path, status, v)
		}
	}
	if status, _ := listed.api("GET", "/v1/apps/demo", nil); status != 200 {
		t.Errorf("listed app: %d", status)
	}
	open := startPlatform(t, Config{})
	for _, app := range []string{"Demo", "-demo", "de_mo", strings.Repeat("a", 65)} {
		status, v := open.api("POST", "/v1/apps/"+app+"/run", map[string]any{"command": "true"})
		if status != 404 || !reflect.DeepEqual(v, want) {
			t.Errorf("app %q: %d %v", app, status, v)
		}
	}
}

func TestRunValidation(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	blank := map[string]any{"errors": map[string]any{"command": []any{"can't be blank"}}}
	for _, body := range []map[string]any{{}, {"command": ""}, {"command": "  "}} {
		status, v := tp.api("POST", "/v1/apps/demo/run", body)
		if status != 422 || !reflect.DeepEqual(v, blank) {
			t.Errorf("body %v: %d %v", body, status, v)
		}
	}
	for _, body := range []map[string]any{
		{"command": "true", "size": "HUGE"},
		{"command": "true", "env": map[string]string{"A=B": "x"}},
		{"command": "true", "detached": true},
	} {
		if status, v := tp.api("POST", "/v1/apps/demo/run", body); status != 422 || v["errors"] == nil {
			t.Errorf("body %v: %d %v", body, status, v)
		}
	}
	req, _ := http.NewRequest("POST", tp.base+"/v1/apps/demo/run", strings.NewReader("{not json"))
	req.Header.Set("Authorization", "Bearer "+tp.token)
	if status, _ := tp.do(req); status != 400 {
		t.Errorf("bad JSON: %d", status)
	}
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{AppQuota: 1, TotalQuota: 2})
	a := tp.run("app-a", "exit 0", false, nil)
	if status, v := tp.api("POST", "/v1/apps/app-a/run", map[string]any{"command": "true"}); status != 429 || v["error"] == nil {
		t.Errorf("over the app quota: %d %v", status, v)
	}
	tp.run("app-b", "true", false, nil)
	if status, v := tp.api("POST", "/v1/apps/app-c/run", map[string]any{"command": "true"}); status != 429 || v["error"] == nil {
		t.Errorf("over the total quota: %d %v", status, v)
	}
	_, br := a.attach()
	br.ReadByte()
	a.wait()
	tp.run("app-a", "true", false, nil) // app-a's one-off ended: room again
}

func TestOperationAndContainer(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	status, v := tp.api("POST", "/v1/apps/demo/run", map[string]any{"command": "echo hi", "tty": false})
	if status != 200 {
		t.Fatalf("run: %d %v", status, v)
	}
	c := v["container"].(map[string]any)
	if c["label"] != "one-off-1" || c["type"] != "one-off" || c["command"] != "echo hi" || c["tty"] != false {
		t.Errorf("container %v", c)
	}
	opURL := v["operation_url"].(string)
	if !strings.HasPrefix(opURL, tp.URL()+"/v1/apps/demo/operations/") || v["operation"] == "" {
		t.Errorf("operation_url %q operation %v (URL %q)", opURL, v["operation"], tp.URL())
	}
	id := v["operation"].(string)
	for _, path := range []string{"/v1/apps/demo/operations/" + id, "/v1/operations/" + id} {
		status, op := tp.api("GET", path, nil)
		o, _ := op["operation"].(map[string]any)
		if status != 200 || o["status"] != "done" || o["type"] != "start-one-off" {
			t.Fatalf("%s: %d %v", path, status, op)
		}
		if _, err := time.Parse(time.RFC3339, o["finished_at"].(string)); err != nil {
			t.Errorf("finished_at: %v", err)
		}
		data := o["start_one_off_data"].(map[string]any)
		if data["tty"] != false || !strings.HasPrefix(data["attach_url"].(string), tp.URL()+"/") || data["container_id"] != c["id"] {
			t.Errorf("start_one_off_data %v", data)
		}
	}
	if status, _ := tp.api("GET", "/v1/apps/other/operations/"+id, nil); status != 404 {
		t.Errorf("operation under another app: %d", status)
	}
	if status, _ := tp.api("GET", "/v1/operations/nope", nil); status != 404 {
		t.Errorf("unknown operation: %d", status)
	}
	// Terminal mode: no tty echo.
	o := tp.run("demo", "true", true, nil)
	if _, ok := o.container["tty"]; ok {
		t.Errorf("terminal container echoes tty: %v", o.container)
	}
}

func TestLocationHeader(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	req, _ := http.NewRequest("POST", tp.base+"/v1/apps/demo/run", strings.NewReader(`{"command":"true"}`))
	req.Header.Set("Authorization", "Bearer "+tp.token)
	res, err := tp.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		OperationURL string `json:"operation_url"`
	}
	json.NewDecoder(res.Body).Decode(&v)
	if res.StatusCode != 200 || res.Header.Get("Location") != v.OperationURL || v.OperationURL == "" {
		t.Errorf("%d Location %q body %q", res.StatusCode, res.Header.Get("Location"), v.OperationURL)
	}
}

func TestAccountEndpoints(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	status, v := tp.api("GET", "/v1/users/self", nil)
	if u, _ := v["user"].(map[string]any); status != 200 || u["id"] == nil || u["username"] == nil || u["email"] == nil {
		t.Errorf("users/self: %d %v", status, v)
	}
	status, v = tp.api("GET", "/v1/regions", nil)
	regions, _ := v["regions"].([]any)
	if status != 200 || len(regions) != 1 || regions[0].(map[string]any)["api"] != tp.URL() || regions[0].(map[string]any)["default"] != true {
		t.Errorf("regions: %d %v (URL %q)", status, v, tp.URL())
	}
	status, v = tp.api("GET", "/v1/apps/demo", nil)
	if a, _ := v["app"].(map[string]any); status != 200 || a["name"] != "demo" || a["region"] == nil {
		t.Errorf("apps/demo: %d %v", status, v)
	}
	if status, v := tp.api("GET", "/v1/nothing", nil); status != 404 || v["error"] == nil {
		t.Errorf("unknown path: %d %v", status, v)
	}
}

func TestAttachRefusals(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{})
	o := tp.run("demo", "sleep 5", true, nil)
	if status, conn, _ := o.attachRaw("not-a-token"); status != 401 {
		t.Errorf("attach with a bad token: %d", status)
	} else {
		conn.Close()
	}
	wrong := &testOneOff{tp: tp, attachURL: tp.URL() + "/" + randomToken(32)}
	if status, conn, _ := wrong.attachRaw(tp.token); status != 404 {
		t.Errorf("attach to an unknown token: %d", status)
	} else {
		conn.Close()
	}
	o.attach()
	if status, conn, _ := o.attachRaw(tp.token); status != 409 {
		t.Errorf("second attach: %d", status)
	} else {
		conn.Close()
	}
	// The attach token is 32 random bytes.
	token := strings.TrimPrefix(o.attachURL, tp.URL()+"/")
	if len(token) < 43 {
		t.Errorf("attach token %q is short", token)
	}
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t, Config{PublicURL: "http://bridge.example:8080/"})
	status, v := tp.api("POST", "/v1/apps/demo/run", map[string]any{"command": "true"})
	if status != 200 || !strings.HasPrefix(v["operation_url"].(string), "http://bridge.example:8080/v1/") {
		t.Errorf("%d %v", status, v)
	}
}

func TestNewRefusedInAnInit(t *testing.T) {
	t.Setenv(initEnvVar, "1")
	if _, err := New(Config{APIToken: testAPIToken}); err == nil {
		t.Error("New succeeded in a process started as an init")
	}
}

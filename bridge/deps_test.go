package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"sshbridge/oneoff"
)

// ClientPlatform's failed Start is a nil OneOff, not a nil pointer in a
// non-nil interface, and keeps the client's error kind for classify.
func TestClientPlatformStartError(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer api.Close()
	c, err := oneoff.New(oneoff.Config{APIURL: api.URL, APIToken: "tk"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := ClientPlatform(c).Start(context.Background(), oneoff.RunRequest{App: "demo", Command: "true"})
	if o != nil || !errors.Is(err, oneoff.ErrUnauthorized) {
		t.Errorf("Start = %#v, %v; want nil and an ErrUnauthorized", o, err)
	}
}

package oneoff_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"sshbridge/internal/testkit"
	"sshbridge/oneoff"
	"sshbridge/platform"
	"sshbridge/uploads"
)

// BenchmarkDeliverSmallFiles delivers 1000 pending files of 10 KiB from a
// staging area to a one-off of the embedded platform, all in this
// process, for the profile of the whole path (staging area, client,
// platform); e2e's BenchmarkDeliverySmallFiles is the gate.
func BenchmarkDeliverSmallFiles(b *testing.B) {
	p, err := platform.New(platform.Config{APIToken: apiToken, StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + testkit.Serve(b, p)
	c, err := oneoff.New(oneoff.Config{APIURL: url, APIToken: apiToken})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	s, err := uploads.Open(b.TempDir(), uploads.Limits{MaxFileSize: -1, UserQuota: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sc := s.Scope("u", "demo")
	content := make([]byte, 10<<10)
	for b.Loop() {
		b.StopTimer()
		for i := range 1000 {
			w, err := sc.Create(fmt.Sprintf("f%04d", i), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			w.Write(content)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		o, err := c.Start(context.Background(), oneoff.RunRequest{App: "demo", Command: "true"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d, err := sc.Deliver(context.Background(), o.Upload, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d.Release()
		for i := range 1000 {
			sc.Remove(fmt.Sprintf("f%04d", i))
		}
		b.StartTimer()
	}
}

// BenchmarkDeliverLargeFile delivers one pending file of 256 MiB from a
// staging area to a one-off of the embedded platform, all in this process,
// over plain HTTP (sendfile and splice) and over TLS (user space at both
// ends), for the profile of the path a large file takes; e2e's
// BenchmarkDelivery is the gate.
func BenchmarkDeliverLargeFile(b *testing.B) {
	for _, tls := range []bool{false, true} {
		name := "http"
		if tls {
			name = "https"
		}
		b.Run(name, func(b *testing.B) { deliverLargeFile(b, tls) })
	}
}

func deliverLargeFile(b *testing.B, useTLS bool) {
	const size = 256 << 20
	cfg := platform.Config{APIToken: apiToken, StateDir: b.TempDir(), MaxUploadBytes: 2 * size}
	l := testkit.Listen(b)
	var client *http.Client
	if useTLS {
		// httptest's certificate (for 127.0.0.1) and a client that trusts it.
		ts := httptest.NewUnstartedServer(http.NotFoundHandler())
		ts.StartTLS()
		tlsCfg, c := ts.TLS.Clone(), ts.Client()
		ts.Close()
		client = c
		cfg.PublicURL = "https://" + l.Addr().String()
		l = tls.NewListener(l, tlsCfg)
	}
	p, err := platform.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(l)
	b.Cleanup(func() { p.Shutdown(context.Background()) })
	url := "http://" + l.Addr().String()
	if useTLS {
		url = cfg.PublicURL
	}
	c, err := oneoff.New(oneoff.Config{APIURL: url, APIToken: apiToken, HTTP: client})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	s, err := uploads.Open(b.TempDir(), uploads.Limits{MaxFileSize: -1, UserQuota: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sc := s.Scope("u", "demo")
	w, err := sc.Create("big", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range size / len(chunk) {
		w.Write(chunk)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		o, err := c.Start(context.Background(), oneoff.RunRequest{App: "demo", Command: "true"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d, err := sc.Deliver(context.Background(), o.Upload, nil)
		if err != nil {
			b.Fatal(err)
		}
		d.Release()
	}
}

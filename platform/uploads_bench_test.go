package platform

import (
	"fmt"
	"testing"
)

// BenchmarkUploadSmallFile times the platform's side of one 10 KiB upload
// (a request of its own over a kept-alive connection), for the profile of
// a delivery of many small files.
func BenchmarkUploadSmallFile(b *testing.B) {
	tp := startPlatform(b, Config{})
	o := tp.run("demo", "sleep 600", false, nil)
	content := make([]byte, 10<<10)
	i := 0
	for b.Loop() {
		if status, body := o.upload(fmt.Sprintf("f%d", i), content); status != 200 {
			b.Fatalf("upload: %d %s", status, body)
		}
		i++
	}
}

package oneoff_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"sshbridge/oneoff"
)

// A whole one-off, as the bridge drives it: start, upload, attach, pump,
// exit code, and one sentence per kind of failure.
func Example() {
	ctx := context.Background()
	c, err := oneoff.New(oneoff.Config{APIURL: "https://api.osc-fr1.scalingo.com", AuthURL: "https://auth.scalingo.com", APIToken: os.Getenv("SCALINGO_API_TOKEN")})
	if err != nil {
		panic(err)
	}
	o, err := c.Start(ctx, oneoff.RunRequest{App: "my-app", Command: "cat /tmp/uploads/notes.txt"})
	if err == nil {
		err = o.Upload(ctx, "notes.txt", 6, strings.NewReader("hello\n"))
	}
	var s *oneoff.Stream
	if err == nil {
		s, err = o.Attach(ctx)
	}
	code := 0
	if err == nil {
		s.CloseWrite() // no input: 0x04 on a terminal, a half-close in pipe mode
		io.Copy(os.Stdout, s)
		s.Close()
		code, err = o.Wait(ctx)
	}
	switch {
	case err == nil:
		fmt.Println("exit code", code)
	case errors.Is(err, oneoff.ErrAppNotFound):
		fmt.Println("no such app")
	case errors.Is(err, oneoff.ErrInactivity):
		fmt.Println("stopped for inactivity")
	default:
		fmt.Println("platform trouble:", err)
	}
}

package platform

import (
	"testing"
)

// TestNoPipeMode: with Config.NoPipeMode a run asking for "tty": false is
// served as a platform without the extension serves it: no "tty": false in
// the answer nor in the operation, and the command on a terminal. Without
// it, the same run gets pipes and the echo.
func TestNoPipeMode(t *testing.T) {
	t.Parallel()
	const command = `test -t 0 && echo stdin-terminal; test -t 1 && echo stdout-terminal; tty >/dev/null && echo has-tty; echo "TERM=$TERM"`
	for _, tc := range []struct {
		name   string
		cfg    Config
		echoed bool
		out    string
	}{
		{"withheld", Config{NoPipeMode: true}, false, "stdin-terminal\r\nstdout-terminal\r\nhas-tty\r\nTERM=xterm\r\n"},
		{"granted", Config{}, true, "TERM=\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tp := startPlatform(t, tc.cfg)
			o := tp.run("demo", command, false, nil)
			tty, inContainer := o.container["tty"]
			data, _ := o.operation["start_one_off_data"].(map[string]any)
			dataTTY, inData := data["tty"]
			if inContainer != tc.echoed || inData != tc.echoed {
				t.Errorf("tty in container: %v (%v), in start_one_off_data: %v (%v); want echoed: %v", inContainer, tty, inData, dataTTY, tc.echoed)
			}
			if tc.echoed && (tty != false || dataTTY != false) {
				t.Errorf("echo: container tty %v, start_one_off_data tty %v", tty, dataTTY)
			}
			_, br := o.attach()
			if out := readAll(t, br); out != tc.out {
				t.Errorf("output %q, want %q", out, tc.out)
			}
			if status, code := o.wait(); status != 200 || code != 0 {
				t.Errorf("wait: %d exit %d", status, code)
			}
		})
	}
}

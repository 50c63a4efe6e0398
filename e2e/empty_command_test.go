package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// An exec of an empty or blank command ends at once with exit status 0, as
// on OpenSSH's sshd (which runs `sh -c ''`): no one-off starts, and the
// pending uploads stay for the next session.

// emptyCommandChecks stages a file, runs check (which makes n empty-command
// sessions), then finds that no one-off was created and the file is still
// pending.
func emptyCommandChecks(t *testing.T, n int, check func(b *Bridge)) {
	b := StartBridge(t, Options{})
	dir := localTree(t, map[string][]byte{"kept.txt": []byte("kept\n")})
	mustOK(t, "put", b.sftpBatch(t, dir, "", "demo-app", "put kept.txt\n"))
	check(b)
	ended := regexp.MustCompile(`msg="session end" .*kind=exec .* exit_code=0\n`)
	log, ok := b.LogWhen(func(log string) bool { return len(ended.FindAllString(log, -1)) == n })
	if !ok {
		t.Fatalf("want %d exec sessions ended with exit code 0:\n%s", n, log)
	}
	if strings.Contains(log, `msg="one-off created"`) {
		t.Fatalf("a one-off was created for an empty command:\n%s", log)
	}
	if got := pendingList(t, b, dir); got != "kept.txt" {
		t.Fatalf("pending after the empty commands: %q, want kept.txt", got)
	}
}

func TestEmptyCommandGoClient(t *testing.T) {
	emptyCommandChecks(t, 2, func(b *Bridge) {
		c := goClient(t, b, "demo-app")
		for _, command := range []string{"", " \t\n"} {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.CombinedOutput(command)
			if err != nil || len(out) != 0 {
				t.Errorf("Run(%q): %v, output %q; want exit status 0 and no output", command, err, out)
			}
		}
	})
}

// paramiko's exec_command(""), as scripts that probe a host send it.
const paramikoEmptyCommand = `
import sys, paramiko
host, port, key, known = sys.argv[1:]
c = paramiko.SSHClient()
c.load_host_keys(known)
c.set_missing_host_key_policy(paramiko.RejectPolicy())
c.connect(host, int(port), username="demo-app", key_filename=key,
          look_for_keys=False, allow_agent=False, timeout=20)
stdin, stdout, stderr = c.exec_command("")
out, err = stdout.read(), stderr.read()
print(stdout.channel.recv_exit_status(), repr(out), repr(err))
c.close()
`

func TestEmptyCommandParamiko(t *testing.T) {
	emptyCommandChecks(t, 1, func(b *Bridge) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, need(t, "/usr/bin/python3"), "-c", paramikoEmptyCommand, b.Host, b.Port, b.Key, b.KnownHosts)
		if r := runCmd(t, cmd, nil); r.Code != 0 || r.Stdout != "0 b'' b''\n" {
			t.Fatalf("paramiko exec_command(\"\"): %+v, want exit status 0 and no output", r)
		}
	})
}

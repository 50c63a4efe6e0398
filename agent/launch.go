package agent

import (
	"bytes"
	"strconv"
	"strings"
)

// Where the bridge uploads the agent binaries, through the one-off API's
// POST {attach_url}/files (PROTOCOL.md), which writes each file under
// UploadsRoot.
const (
	// UploadsRoot is where a one-off's uploaded files land.
	UploadsRoot = "/tmp/uploads"
	// UploadDir is the subdirectory of UploadsRoot that holds the agent
	// binaries, one per architecture, named by UploadName. The launch
	// line removes it whole before the agent serves anything, so the
	// user's own files in UploadsRoot are all that remain there.
	UploadDir = ".bridge-agent"
)

// UploadName is the path, relative to UploadsRoot, under which the bridge
// uploads the agent for goarch ("amd64", "arm64"): UploadDir/linux-GOARCH.
func UploadName(goarch string) string {
	return UploadDir + "/" + BinaryName(goarch)
}

// Exit codes of the launch line (LaunchCommand) when the agent cannot
// start; each comes with one line on stdout starting "bridge-agent: ".
// Once the agent runs, the exit code is Main's.
const (
	// LaunchNoUpload: UploadsRoot/UploadDir does not exist.
	LaunchNoUpload = 90
	// LaunchNoArch: `uname -m` names an architecture with no agent
	// (neither x86_64/amd64 nor aarch64/arm64), or the one it names was
	// not uploaded.
	LaunchNoArch = 91
	// LaunchNoExecDir: no candidate directory (/tmp, $HOME, /dev/shm,
	// /var/tmp) was writable with an executable copy of the agent (noexec
	// mounts, full or read-only file systems).
	LaunchNoExecDir = 92
)

// LaunchCommand returns the shell line a one-off runs in connection mode
// to start the agent. It is POSIX sh (dash, busybox sh and bash run it) and
// needs, besides the shell, only uname, mktemp (else mkdir), cp, chmod and
// rm.
//
// It picks the binary for `uname -m` (x86_64 or amd64 → linux-amd64,
// aarch64 or arm64 → linux-arm64) in UploadsRoot/UploadDir; copies it into
// a new private directory (mode 0700, named bridge-agent.XXXXXX) in the
// first of /tmp, $HOME, /dev/shm and /var/tmp where the copy answers
// `agent --check` (which catches noexec mounts); removes UploadDir from
// UploadsRoot whatever happens, so the user's pending files are all that
// stay there (UploadsRoot itself stays, empty or not, as in a per-session
// one-off); and execs `COPY agent` with RemoveDirEnv naming the private
// directory, which the agent removes once it runs. A one-off without /proc keeps that directory
// (private, 0700) until it ends.
//
// When the agent cannot start, the line prints one line on stdout starting
// "bridge-agent: " and exits with LaunchNoUpload, LaunchNoArch or
// LaunchNoExecDir; every other message of the commands it runs is
// discarded. ParseLaunchFailure finds that line in the stream's output.
func LaunchCommand() string {
	u := UploadsRoot + "/" + UploadDir
	steps := []string{
		"u=" + u,
		`if [ ! -d "$u" ]; then echo "bridge-agent: no agent uploaded (no ` + u + `)"; exit ` + strconv.Itoa(LaunchNoUpload) + "; fi",
		"m=$(uname -m 2>/dev/null)",
		`case "$m" in x86_64|amd64) a=linux-amd64;; aarch64|arm64) a=linux-arm64;; *) a=;; esac`,
		`c=; w=; x=0`,
		`if [ -z "$a" ]; then w="no agent for architecture ${m:-unknown}"; x=` + strconv.Itoa(LaunchNoArch) + `; ` +
			`elif [ ! -f "$u/$a" ]; then w="no agent uploaded for architecture $m"; x=` + strconv.Itoa(LaunchNoArch) + `; ` +
			`else for d in /tmp "$HOME" /dev/shm /var/tmp; do ` +
			`[ -n "$d" ] && [ -d "$d" ] || continue; ` +
			`t=$(mktemp -d "$d/bridge-agent.XXXXXX" 2>/dev/null) || { t=$d/bridge-agent.$$; mkdir -m 700 "$t" 2>/dev/null; } || continue; ` +
			`if cp "$u/$a" "$t/agent" 2>/dev/null && chmod 700 "$t/agent" 2>/dev/null && [ "$("$t/agent" agent --check </dev/null 2>/dev/null)" = ok ]; then c=$t/agent; break; fi; ` +
			`rm -rf "$t"; done; ` +
			`[ -n "$c" ] || { w="no directory where the agent can be executed (/tmp, \$HOME, /dev/shm, /var/tmp are noexec or not writable)"; x=` + strconv.Itoa(LaunchNoExecDir) + `; }; fi`,
		`rm -rf "$u"`,
		`if [ -n "$w" ]; then echo "bridge-agent: $w"; exit $x; fi`,
		`export ` + RemoveDirEnv + `="$t"`,
		`exec "$c" agent`,
	}
	return strings.Join(steps, "; ")
}

// launchFailurePrefix starts every line the launch line or the agent
// writes when the agent cannot start.
const launchFailurePrefix = "bridge-agent: "

// ParseLaunchFailure finds, in what a one-off wrote before its stream
// ended without an SSH banner, the line the launch line (LaunchCommand) or
// the agent (Main) wrote about why the agent could not start: the first
// line starting "bridge-agent: ", without its line ending (CR or LF, since
// a terminal may have turned LF into CR LF). ok is false when there is
// none.
func ParseLaunchFailure(output []byte) (line string, ok bool) {
	prefix := []byte(launchFailurePrefix)
	for len(output) > 0 {
		end := bytes.IndexAny(output, "\r\n")
		cur := output
		if end >= 0 {
			cur, output = output[:end], output[end+1:]
		} else {
			output = nil
		}
		if bytes.HasPrefix(cur, prefix) {
			return string(cur), true
		}
	}
	return "", false
}

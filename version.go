package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the release, set at build time with
// `-ldflags "-X main.version=v1.2.3"` (the Dockerfile's VERSION build
// argument does this, since an image's build context has no .git). Empty
// means: take what the Go toolchain stamped into the binary.
var version string

// versionText is one line: the version, the VCS revision and commit time
// when the build stamped them (go build does unless -buildvcs=false), and
// the Go toolchain, e.g.
// "bridge v1.2.3 (revision 623257f1a2b3, 2026-11-29T18:00:00Z) go1.26.8 linux/amd64".
func versionText() string {
	info, ok := debug.ReadBuildInfo()
	v := version
	if v == "" && ok {
		v = info.Main.Version // "(devel)" for a build from a work tree
	}
	if v == "" {
		v = "(devel)"
	}
	var vcs []string
	if ok {
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			vcs = append(vcs, "revision "+rev[:min(12, len(rev))])
		}
		if t := settings["vcs.time"]; t != "" {
			vcs = append(vcs, t)
		}
		if settings["vcs.modified"] == "true" {
			vcs = append(vcs, "modified")
		}
	}
	out := "bridge " + v
	if len(vcs) > 0 {
		out += " (" + strings.Join(vcs, ", ") + ")"
	}
	return out + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultBinariesDir is where the release image (the Dockerfile) puts the
// agent binaries, one per architecture, named as BinaryName says.
const DefaultBinariesDir = "/usr/local/libexec/bridge"

// Architectures are the GOARCH values agents exist for, all for linux.
var Architectures = []string{"amd64", "arm64"}

// BinaryName is the file name of the agent for goarch in a binaries
// directory: "linux-" + goarch ("linux-amd64", "linux-arm64"), the same
// as its name under UploadDir (UploadName).
func BinaryName(goarch string) string {
	return "linux-" + goarch
}

// FindBinaries says which agent binary the bridge uploads for each
// architecture: a map from GOARCH ("amd64", "arm64") to a file's path.
//
// It takes dir/linux-amd64 and dir/linux-arm64 when they are there
// (BinaryName; dir is usually DefaultBinariesDir). When dir is "", does
// not exist, or has no agent for the bridge's own architecture, the
// running executable (os.Executable) serves that architecture, since the
// bridge's own binary has the agent as its "agent" subcommand; this is
// what lets a bridge built from a fresh clone (`go run .`) serve connection
// mode to one-offs of its own architecture. That holds only on Linux and
// for an architecture in Architectures.
//
// It returns an error, naming dir and the files it looked for, when the
// result would be empty, and when a file it looked for is there but not a
// regular executable file or cannot be read.
func FindBinaries(dir string) (map[string]string, error) {
	found := map[string]string{}
	var looked []string
	if dir != "" {
		for _, arch := range Architectures {
			p := filepath.Join(dir, BinaryName(arch))
			looked = append(looked, p)
			fi, err := os.Stat(p)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue
			case err != nil:
				return nil, fmt.Errorf("agent binaries: %w", err)
			case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
				return nil, fmt.Errorf("agent binaries: %s is not an executable file", p)
			}
			found[arch] = p
		}
	}
	if _, ok := found[runtime.GOARCH]; !ok && runtime.GOOS == "linux" && isArchitecture(runtime.GOARCH) {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("agent binaries: the running executable, the agent for %s: %w", runtime.GOARCH, err)
		}
		found[runtime.GOARCH] = exe
	}
	if len(found) == 0 {
		if dir == "" {
			return nil, fmt.Errorf("agent binaries: no directory given, and this bridge (%s/%s) cannot serve as the agent", runtime.GOOS, runtime.GOARCH)
		}
		return nil, fmt.Errorf("agent binaries: none in %s (looked for %s), and this bridge (%s/%s) cannot serve as the agent",
			dir, strings.Join(looked, ", "), runtime.GOOS, runtime.GOARCH)
	}
	return found, nil
}

func isArchitecture(goarch string) bool {
	for _, a := range Architectures {
		if a == goarch {
			return true
		}
	}
	return false
}

// Command bridge-agent is the connection-mode agent alone: the program
// the bridge uploads into a one-off container and runs there, an SSH
// server on its stdin and stdout (package agent). The release image
// carries one per architecture, built from here; the bridge's own binary
// serves the same as `bridge agent`.
//
// Usage:
//
//	bridge-agent [agent] [--check | --help]
//
// The optional leading "agent" lets the launcher run `"$bin" agent`
// whether $bin is this command or the bridge itself.
package main

import (
	"os"

	"sshbridge/agent"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	os.Exit(agent.Main(args, os.Stdin, os.Stdout, os.Stderr))
}

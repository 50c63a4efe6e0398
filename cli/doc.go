// Package cli reads the bridge's command line and environment: long flags,
// each bound to its environment variable in the call that defines it, typed
// values (sizes with K/M/G, Go durations, lists, log levels) whose errors
// say what a good value looks like, parse errors as one line that names the
// flag and the fix, and a usage text that lists each flag once with its
// variable and default.
//
// A flag on the command line wins over its variable, as the README's
// Configuration section says; an empty variable counts as unset.
package cli

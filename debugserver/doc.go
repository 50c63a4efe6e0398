// Package debugserver serves the bridge's internals for whoever diagnoses
// it (--debug-listen): Go's profiles (net/http/pprof under /debug/pprof/)
// and GET /debug/stats, a JSON object of the process's open file
// descriptors, goroutines and heap, which a load run compares before and
// after to find what leaks.
//
// Nothing here is authenticated, and the profiles show the process's
// memory and command line: the listener belongs on loopback.
package debugserver

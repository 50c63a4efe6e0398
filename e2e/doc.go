// Package e2e tests the built bridge binary end to end with the real
// OpenSSH clients (and other SSH tools), against the embedded platform.
// Every program a test needs must be installed: a missing one fails the
// test, it is never skipped (.ci/run installs them).
package e2e

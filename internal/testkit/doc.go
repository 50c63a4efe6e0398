// Package testkit holds what the project's tests share, in the manner of
// httptest: a synchronised buffer for logs and output, a loopback server
// helper, the wait for a process's --listen-address-file, fixed client
// keys (testdata/keys, made once with ssh-keygen and committed, so that a
// run does not depend on key generation), and a real S3 store, SeaweedFS
// (weed.go: StartWeed, SharedWeed), from the binary BRIDGE_TEST_WEED
// names.
//
// It is for _test.go files only; no production package imports it.
package testkit

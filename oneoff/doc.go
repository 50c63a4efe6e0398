// Package oneoff is the client of the one-off container API
// (PROTOCOL.md): token exchange, run, operation polling, uploads, the
// CONNECT attach stream, resize and the exit code.
//
// It speaks to Scalingo's regional API and to the embedded platform alike,
// and does what Scalingo's own CLI does where the public documentation is
// silent: the operation URL is taken from the body, the Location header or
// the operation id; the attach URL from start_one_off_data; resize values
// travel as strings; /wait is decoded leniently and 408 means the platform
// killed the one-off for inactivity.
//
// Every failure is an *APIError whose Kind is one of the Err* sentinels, so
// that the caller can say one clear sentence per kind (errors.Is), except
// cancellation by the caller's context, which wraps context.Cause(ctx), and
// read errors of the caller's own upload source, which are wrapped as is.
//
// Decisions worth knowing:
//   - An attach URL without a port gets the scheme's default (80 or 443):
//     the protocol says the URL always carries one, a client should not
//     fail on a server that forgot it.
//   - The attach stream is dialed directly, so no HTTP proxy is used for any
//     call (the default HTTP client has no proxy either).
//   - The attach service is authenticated with the current bearer token
//     (Basic ":"+JWT), refreshed as for any other call, so a session longer
//     than the token's life still reads its exit code.
//   - Redirects are not followed by the default HTTP client: an API answers
//     where it is asked, and credentials must not travel elsewhere.
package oneoff

// Package proxyprotocol reads the PROXY protocol header (HAProxy's PROXY
// protocol, versions 1 and 2, through github.com/pires/go-proxyproto) that
// a load balancer puts in front of each connection it passes on, so that
// the bridge sees the client's address instead of the balancer's.
//
// Only the addresses the operator names may send a header, and from them it
// is required: a connection from such an address without a valid header
// within the header read timeout is closed, since it cannot tell whom it
// carries (go-proxyproto's REQUIRE). From any other address a connection
// is served as it is, and one that opens with a header anyway is closed at
// its first read (REJECT): a client reaching the bridge directly cannot
// claim another address.
//
// A header that carries no client address (a version 2 LOCAL command, what
// balancers send for their own health checks, or version 1's UNKNOWN) says
// the connection is the balancer's own: its address stays the balancer's,
// and Conn.Local reports it.
package proxyprotocol

// Package auth decides who may connect to the bridge and which app they may
// open: OpenSSH authorized_keys files (with OpenSSH's options plus apps="..."),
// OpenSSH user certificates (TrustedUserCAKeys and cert-authority lines),
// revocation lists (KRL or plain keys) and an audit log line for every
// decision. The host key is in hostkey.go, its OpenSSH host certificates
// in hostcert.go.
//
// Admission decides which connections may try to authenticate at all and
// keeps each source address's penalty: caps on unauthenticated connections
// in total and per source (OpenSSH's MaxStartups and PerSourceMaxStartups),
// and penalties earned by failed connections (OpenSSH's PerSourcePenalties
// and PerSourcePenaltyExemptList). Unlike sshd, a penalty never refuses a
// connection: it slows down refused keys and shortens the login grace, so
// that a client proving an authorized key is never locked out by others
// sharing its address (see Penalties).
//
// The SSH user name is the app, or the app followed by "+conn", which
// asks for connection mode (appname.ParseUser): "demo-app+conn" is app
// "demo-app" for apps=, certificate principals and the app name check,
// with Grant.ConnectionModeByName set. A key line may use every app, or those its
// apps="glob,!glob" option allows (path.Match globs; as in OpenSSH pattern
// lists, a negated match denies and negations alone allow nothing). The
// first line that authorizes a key (from=, expiry-time) and allows the app
// gives the Grant; a key that some line authorizes but no line allows for
// the app authenticates with Grant.Allowed false, so that the session can
// say plainly that this key may not use that app. Anything else is refused
// during authentication.
//
// Certificates get least privilege on every path: a certificate opens the
// apps named by its principals, whether its CA is in the trusted CA keys
// file or on a cert-authority line. On a cert-authority line, principals=
// only narrows which certificates the line accepts (one of its names must
// be among the certificate's principals, as in sshd), and apps=, when the
// line has it, alone names the apps the line's certificates open (a role
// CA that should open every app says apps="*"). The force-command and source-address critical options are honoured, a
// missing permit-pty (or port, agent, X11 forwarding) extension restricts
// the session, and the KRL or key list of the revoked keys file applies to
// keys, certificates (serial, key id) and CA keys.
//
// Besides OpenSSH's options, a key line may say session-mode="connection"
// or session-mode="session" (Grant.SessionMode): which mode its
// connections get. Any other value is a load error naming file and line.
//
// Forwarding, served in connection mode only, follows sshd with
// GatewayPorts no (Grant.CheckOpen, CheckListen, CheckOpenStreamlocal):
// no-port-forwarding and restrict refuse all of it; direct-tcpip reaches
// the container's loopback, and also what permitopen entries name (unlike
// sshd, permitopen entries add to the loopback rather than replace it);
// tcpip-forward listens on the loopback, and only where permitlisten
// entries allow once a key has some; direct-streamlocal@openssh.com is
// refused only with all port forwarding. permitopen and permitlisten
// values are checked at load as sshd checks them.
//
// An Authority is safe for concurrent use. Its files are checked for
// changes every second (by Watch, and by the handler itself); a new version
// that does not parse is refused with a log line naming file and line and
// the last good set stays in force. Grants are per connection, so a reload
// never drops a live session.
package auth

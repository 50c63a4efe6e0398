package auth

// MaxAuthTries is the number of failed authentication requests after
// which a connection is ended (sshd's MaxAuthTries default), counted as
// sshd counts them: every failed request, a refused public key offer too,
// except a first "none" request.
const MaxAuthTries = 6

package auth

// MaxAuthTries is the number of authentication attempts allowed on one
// connection (sshd's MaxAuthTries default), for the server config.
const MaxAuthTries = 6

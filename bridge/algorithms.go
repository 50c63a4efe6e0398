package bridge

import gossh "golang.org/x/crypto/ssh"

// The algorithms are set explicitly: x/crypto's defaults still offer some
// that audits fail (SHA-1 MACs, NIST curves).
//
// MACs: encrypt-then-MAC first, then one encrypt-and-MAC MAC,
// hmac-sha2-256, for Dropbear's dbclient (2022.83 offers neither AES-GCM
// nor an ETM MAC, only hmac-sha1 and hmac-sha2-256 with AES-CTR or
// ChaCha20-Poly1305). The client's order decides (RFC 4253 section 7.1),
// and OpenSSH lists its ETM MACs before hmac-sha2-256, so it keeps
// hmac-sha2-256-etm. ssh-audit warns about this one MAC only ("using
// encrypt-and-MAC mode"); the README names it.
//
// No chacha20-poly1305: x/crypto's ChaCha20 has no amd64 assembly and
// runs at a fraction of AES's speed on the same core, and OpenSSH's client
// asks for it first, so offering it would cap every transfer. Without it,
// OpenSSH's own order would pick aes128-ctr (with hmac-sha2-256-etm); the
// bridge proposes AES-GCM alone to a client that offers it (kexinit.go),
// so OpenSSH gets aes128-gcm@openssh.com, whose authentication x/crypto
// runs in assembly too. AES-CTR stays for clients without GCM.
var (
	keyExchanges = []string{
		gossh.KeyExchangeMLKEM768X25519,
		gossh.KeyExchangeCurve25519,
		"curve25519-sha256@libssh.org",
	}
	ciphers = []string{
		gossh.CipherAES128GCM,
		gossh.CipherAES256GCM,
		gossh.CipherAES256CTR,
		gossh.CipherAES192CTR,
		gossh.CipherAES128CTR,
	}
	macs = []string{
		gossh.HMACSHA256ETM,
		gossh.HMACSHA512ETM,
		gossh.HMACSHA256,
	}
	// User key signature algorithms: no SHA-1 ("ssh-rsa") signatures.
	publicKeyAuthAlgorithms = []string{
		gossh.KeyAlgoED25519,
		gossh.KeyAlgoSKED25519,
		gossh.KeyAlgoRSASHA512,
		gossh.KeyAlgoRSASHA256,
		gossh.KeyAlgoECDSA256,
		gossh.KeyAlgoSKECDSA256,
		gossh.KeyAlgoECDSA384,
		gossh.KeyAlgoECDSA521,
	}
)

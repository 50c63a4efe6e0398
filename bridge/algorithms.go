package bridge

import gossh "golang.org/x/crypto/ssh"

// The algorithms are set explicitly: x/crypto's defaults still offer some
// that audits fail (SHA-1 MACs, NIST curves). Only encrypt-then-MAC MACs.
//
// No chacha20-poly1305: x/crypto's ChaCha20 has no amd64 assembly and
// runs at a fraction of AES's speed on the same core, and OpenSSH's client
// asks for it first, so offering it would cap every transfer. Without it,
// OpenSSH picks aes128-ctr (with hmac-sha2-256-etm), which AES-NI and the
// SHA extensions make several times faster; AES-CTR stays for clients
// without GCM.
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

package bridge

import gossh "golang.org/x/crypto/ssh"

// The algorithms are set explicitly: x/crypto's defaults still offer some
// that audits fail (SHA-1 MACs, NIST curves). Only encrypt-then-MAC MACs;
// the AES-CTR ciphers stay for clients without GCM or ChaCha20.
var (
	keyExchanges = []string{
		gossh.KeyExchangeMLKEM768X25519,
		gossh.KeyExchangeCurve25519,
		"curve25519-sha256@libssh.org",
	}
	ciphers = []string{
		gossh.CipherChaCha20Poly1305,
		gossh.CipherAES256GCM,
		gossh.CipherAES128GCM,
		gossh.CipherAES256CTR,
		gossh.CipherAES192CTR,
		gossh.CipherAES128CTR,
	}
	macs = []string{
		gossh.HMACSHA512ETM,
		gossh.HMACSHA256ETM,
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

package platform

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tokenSigner issues and checks the bearer tokens: HS256 JWTs with an `exp`
// claim (Scalingo's clients read it to know when to re-exchange), signed with
// a secret made at start, so tokens die with the process.
type tokenSigner struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// jwtHeader is the one header this signer makes and accepts.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

type jwtClaims struct {
	Subject  string `json:"sub"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

func newTokenSigner(ttl time.Duration) (*tokenSigner, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	return &tokenSigner{secret: secret, ttl: ttl, now: time.Now}, nil
}

func (s *tokenSigner) issue(subject string) (string, error) {
	now := s.now()
	claims, err := json.Marshal(jwtClaims{Subject: subject, IssuedAt: now.Unix(), Expires: now.Add(s.ttl).Unix()})
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	signed := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.sign(signed)), nil
}

func (s *tokenSigner) sign(signed string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

var errBadToken = errors.New("invalid or expired token")

// verify checks the signature and the expiry of a bearer token.
func (s *tokenSigner) verify(token string) error {
	if len(token) > 4096 {
		return errBadToken
	}
	header, rest, ok := strings.Cut(token, ".")
	if !ok || header != jwtHeader {
		return errBadToken
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return errBadToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.sign(header+"."+payload)) {
		return errBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return errBadToken
	}
	var c jwtClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return errBadToken
	}
	if s.now().Unix() >= c.Expires {
		return errBadToken
	}
	return nil
}

package oneoff

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// jwtExpiry reads the exp claim of a JWT without verifying it: the client
// only needs to know when to exchange again, the server does the checking.
func jwtExpiry(tok string) (time.Time, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("bearer token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, fmt.Errorf("jwt payload: %w", err)
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return time.Time{}, fmt.Errorf("jwt claims: %w", err)
	}
	if claims.Exp == nil {
		return time.Time{}, errors.New("jwt has no exp claim")
	}
	sec, err := claims.Exp.Float64()
	// Beyond year 5138 or before 1970 is nonsense, and overflows.
	if err != nil || math.IsNaN(sec) || sec <= 0 || sec > 1e11 {
		return time.Time{}, fmt.Errorf("jwt exp %q is not a time", claims.Exp.String())
	}
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9)), nil
}

package auth

import "context"

type reasonKey struct{}

// RefusalFrom returns, for the connection of ctx, access control's reason
// for its decision on the latest key PublicKeyHandler saw (the words of
// its audit line: "unknown key", "key revoked", "app not allowed by apps=
// (FILE:LINE)", ...); "" when that key was accepted for the app, or no key
// was seen.
func RefusalFrom(ctx context.Context) string {
	r, _ := ctx.Value(reasonKey{}).(string)
	return r
}

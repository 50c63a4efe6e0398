package platform

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"sshbridge/appname"
)

// bearerToken returns the token of an `Authorization: Bearer` header.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// basicPassword returns the password of `Authorization: Basic`; Scalingo's
// clients send an empty user name and the token as password.
func basicPassword(r *http.Request) string {
	_, pw, ok := r.BasicAuth()
	if !ok {
		return ""
	}
	return pw
}

func (p *Platform) requireBearer(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p.tokens.verify(bearerToken(r)) != nil {
			writeUnauthorized(w)
			return
		}
		next(w, r)
	}
}

// requireApp answers the API's 404 for apps that do not exist: with a list of
// apps, those not in it; without one, names that are not app names.
func (p *Platform) requireApp(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !p.appExists(r.PathValue("app")) {
			writeAppNotFound(w)
			return
		}
		next(w, r)
	}
}

func (p *Platform) appExists(app string) bool {
	if !appname.Valid(app) {
		return false
	}
	return len(p.cfg.Apps) == 0 || slices.Contains(p.cfg.Apps, app)
}

// handleTokenExchange trades the API token (Basic ":"+token) for a bearer JWT.
func (p *Platform) handleTokenExchange(w http.ResponseWriter, r *http.Request) {
	pw := basicPassword(r)
	if pw == "" || subtle.ConstantTimeCompare([]byte(pw), []byte(p.cfg.APIToken)) != 1 {
		writeUnauthorized(w)
		return
	}
	tok, err := p.tokens.issue(localUserID)
	if err != nil {
		p.log.Error("token exchange", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

package webui

import (
	"net/http"
	"net/url"
)

// csrfHeader carries the session's CSRF token on the page's XHRs; forms
// carry it in the csrfField field.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf"
	// preCookie holds the double-submit token of the login and setup
	// forms, which are posted before any session exists.
	preCookie = "moh_form"
)

// crossSite reports whether a browser says r comes from another site. It
// is a second wall behind SameSite=Strict cookies and the CSRF token.
// Sec-Fetch-Site, which modern browsers always send and pages cannot
// forge, decides when present; otherwise the Origin header does (an opaque
// "null" origin counts as foreign).
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
	default: // cross-site, same-site (another host under the same domain)
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return true
	}
	return u.Host != r.Host
}

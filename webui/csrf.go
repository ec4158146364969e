package webui

import "net/http"

// csrfHeader carries the session's CSRF token on the page's XHRs; forms
// carry it in the csrfField field.
const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf"
	// preCookie holds the double-submit token of the login and setup
	// forms, which are posted before any session exists.
	preCookie = "moh_form"
)

// crossOrigin is the standard library's cross-origin check, with no
// trusted origins and no bypass patterns: the box's page is served only
// from the box itself.
var crossOrigin = http.NewCrossOriginProtection()

// crossSite reports whether a browser says the state-changing request r
// comes from another origin. It is a second wall behind SameSite=Strict
// cookies and the CSRF token. Sec-Fetch-Site, which modern browsers
// always send and pages cannot forge, decides when present (same-site,
// another host under the same domain, counts as foreign); otherwise the
// Origin header must name this host (an opaque "null" origin counts as
// foreign). A request with neither header is not from a browser, or is
// same-origin, and passes. Safe methods (GET, HEAD, OPTIONS) always pass:
// callers ask only about requests that change state.
func crossSite(r *http.Request) bool {
	return crossOrigin.Check(r) != nil
}

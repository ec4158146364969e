package webui

import (
	"fmt"
	"net/http"
)

// csp allows nothing but this box: no inline script or style, no CDN, no
// framing (clickjacking), no plugins.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaderValues are set on every answer. The keys are canonical
// and the value slices shared and never modified, so setting them costs
// no allocation per request.
var securityHeaderValues = http.Header{
	"Content-Security-Policy": {csp},
	"X-Content-Type-Options":  {"nosniff"},
	"X-Frame-Options":         {"DENY"},
	// same-origin rather than no-referrer: under no-referrer browsers send
	// "Origin: null" on form posts, which hides the origin the cross-site
	// check needs.
	"Referrer-Policy":              {"same-origin"},
	"Cross-Origin-Opener-Policy":   {"same-origin"},
	"Cross-Origin-Resource-Policy": {"same-origin"},
	"Permissions-Policy":           {"camera=(), microphone=(), geolocation=()"},
}

// hsts tells a browser that reached the box over HTTPS to use nothing
// else for a year, so a later plain-HTTP link cannot be used to steal the
// session. Sent only over TLS (RFC 6797 §7.2): over plain HTTP it would be
// ignored, and a box without TLS must stay reachable.
var hsts = []string{"max-age=31536000"}

// securityHeaders sets the headers every answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range securityHeaderValues {
			h[k] = v
		}
		if r.TLS != nil {
			h["Strict-Transport-Security"] = hsts
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic in a handler into a logged 500 in the API's
// error shape instead of a dropped connection.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

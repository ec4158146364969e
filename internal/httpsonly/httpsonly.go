// Package httpsonly keeps a download on https: moh fetches bundles and
// tracks by URL with a sha256, and a redirect to plain http, though the
// hash still guards the content, would tell anyone on the path what the
// box fetches and let them hold or fake the answer.
package httpsonly

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrRedirect means an https download was redirected to another scheme.
var ErrRedirect = errors.New("only https:// URLs are accepted")

// maxRedirects is net/http's own default, kept when client has no rule.
const maxRedirects = 10

// Client returns a copy of client that refuses to follow a redirect to
// anything but https. client's own redirect rule still applies.
func Client(client *http.Client) *http.Client {
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused: %w", req.URL.Redacted(), ErrRedirect)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &c
}

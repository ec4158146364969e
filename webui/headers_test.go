package webui

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
)

// TestHSTSOnlyOverTLS: Strict-Transport-Security on every answer served
// over HTTPS, and on none served over plain HTTP (where a browser ignores
// it and a box without TLS must stay reachable).
func TestHSTSOnlyOverTLS(t *testing.T) {
	paths := []string{"/healthz", "/login", "/api/v1/status", "/static/app.js", "/nope", "/api/v1/nope"}
	check := func(t *testing.T, cl *http.Client, base string, want string) {
		for _, p := range paths {
			resp, err := cl.Get(base + p)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security"); got != want {
				t.Errorf("%s %s (%d): Strict-Transport-Security %q, want %q", base, p, resp.StatusCode, got, want)
			}
		}
	}
	t.Run("https", func(t *testing.T) {
		dir := t.TempDir()
		SetPassword(dir, testPW)
		s, err := New(Options{Player: envOpts{}.testPlayer(t), DataDir: dir, Logger: testLogger(t), TLSAuto: true})
		if err != nil {
			t.Fatal(err)
		}
		ln := serveLoopback(t, s)
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		check(t, cl, "https://"+ln.Addr().String(), "max-age=31536000")
	})
	t.Run("http", func(t *testing.T) {
		s := serve(t, nil, nil)
		check(t, http.DefaultClient, "http://"+s.addr, "")
	})
}

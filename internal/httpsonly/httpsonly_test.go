package httpsonly

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A real TLS server redirects within https, to plain http and in a loop;
// only the first is followed.
func TestClientFollowsOnlyHTTPS(t *testing.T) {
	plain := httptest.NewServer(http.NotFoundHandler()) // never reached
	defer plain.Close()
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/file", http.StatusFound)
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/file", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/loop", http.StatusFound)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "bundle")
	})
	srv = httptest.NewTLSServer(mux)
	defer srv.Close()
	c := Client(srv.Client())

	resp, err := c.Get(srv.URL + "/same")
	if err != nil {
		t.Fatalf("https → https: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "bundle" {
		t.Fatalf("https → https: body %q", b)
	}

	_, err = c.Get(srv.URL + "/down")
	if !errors.Is(err, ErrRedirect) || !strings.Contains(err.Error(), "redirect to http://") {
		t.Fatalf("https → http: err = %v, want ErrRedirect naming the URL", err)
	}

	_, err = c.Get(srv.URL + "/loop")
	if err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Fatalf("loop: err = %v, want the redirect limit", err)
	}

	// The client's own rule still applies: here, no redirect at all.
	own := srv.Client()
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return errors.New("no redirects here") }
	if _, err := Client(own).Get(srv.URL + "/same"); err == nil || !strings.Contains(err.Error(), "no redirects here") {
		t.Fatalf("own rule: err = %v", err)
	}
}

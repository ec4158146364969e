package capool

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A file server with a certificate no public CA signed is reached once its
// CA file is given, and refused without it; the same file is the only
// root of ClientConfig.
func TestClientsTrustTheCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "bundle")
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	c, err := HTTPClient(caFile, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "bundle" || c.Timeout != 5*time.Second {
		t.Fatalf("body %q, timeout %s", b, c.Timeout)
	}

	sys, err := HTTPClient("", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA file: err = %v, want a certificate error", err)
	}

	cfg, err := ClientConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || cfg.MinVersion == 0 {
		t.Fatalf("ClientConfig(%s) = %+v, want the file as roots and a TLS floor", caFile, cfg)
	}
	if cfg, err := ClientConfig(""); err != nil || cfg.RootCAs != nil {
		t.Fatalf("ClientConfig(\"\") = %+v, %v, want the system roots", cfg, err)
	}
	if _, err := ClientConfig(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("ClientConfig of a missing file: no error")
	}
}

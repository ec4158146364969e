package check

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// A remote check against a box's own certificate: pinned by fingerprint
// or trusted through a CA file; anything else is refused, never ignored.
func TestCheckOverTLS(t *testing.T) {
	b := &box{p: &fakePlayer{Flowing: true, St: player.Status{
		BackendStatus: player.BackendStatus{State: player.StatePlaying}, Wanted: player.StatePlaying, Volume: 80,
	}}, free: 500 << 20, mqtt: true, now: time.Now()}
	srv := httptest.NewTLSServer(b.handler())
	defer srv.Close()
	der := srv.Certificate().Raw
	sum := sha256.Sum256(der)
	var colons []string
	for _, c := range sum {
		colons = append(colons, strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	caFile := filepath.Join(t.TempDir(), "box.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t)}), 0o600)

	wrong := sha256.Sum256([]byte("another certificate"))
	for _, tc := range []struct {
		name       string
		ca, pin    string
		code       int
		wantInLine string
	}{
		{"system trust store refuses the box", "", "", Critical, "certificate"},
		{"pinned, openssl style", "", "sha256 Fingerprint=" + strings.Join(colons, ":"), OK, "MOH OK"},
		{"pinned, plain hex", "", hex.EncodeToString(sum[:]), OK, "MOH OK"},
		{"wrong pin", "", hex.EncodeToString(wrong[:]), Critical, "does not match the pinned one"},
		{"CA file", caFile, "", OK, "MOH OK"},
		{"another CA", otherCA, "", Critical, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := TLSClient(tc.ca, tc.pin)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := Run(context.Background(), Options{URL: srv.URL, Client: client, Timeout: 3 * time.Second}, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.wantInLine) {
				t.Errorf("exit %d, want %d with %q: %s", code, tc.code, tc.wantInLine, out.String())
			}
		})
	}
	for _, bad := range []string{"abc", strings.Repeat("z", 64)} {
		if _, err := TLSClient("", bad); err == nil {
			t.Errorf("pin %q accepted", bad)
		}
	}
	if _, err := TLSClient(filepath.Join(t.TempDir(), "missing.pem"), ""); err == nil {
		t.Error("missing CA file accepted")
	}
}

// selfSigned makes another CA certificate, unrelated to the test server's.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

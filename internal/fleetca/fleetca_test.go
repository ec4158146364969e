package fleetca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func csrFor(t *testing.T, cn string, key any) []byte {
	t.Helper()
	if key == nil {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func openssl(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestSignChecksTheCSR(t *testing.T) {
	ca, created, err := Init(t.TempDir(), "", 0, nil)
	if err != nil || !created {
		t.Fatal(err, created)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	good := csrFor(t, "paris-1", nil)
	// One byte of the signed part changed: the self-signature fails.
	blk, _ := pem.Decode(good)
	tampered := append([]byte{}, blk.Bytes...)
	i := strings.Index(string(tampered), "paris-1")
	tampered[i] = 'P'
	for _, tc := range []struct {
		name string
		csr  []byte
		cn   string
		want error
	}{
		{"another device's CN", good, "lyon-1", ErrCNMismatch},
		{"tampered", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), "Paris-1", ErrBadCSR},
		{"rsa key", csrFor(t, "paris-1", rsaKey), "paris-1", ErrBadCSR},
		{"p-384 key", csrFor(t, "paris-1", p384), "paris-1", ErrBadCSR},
		{"not pem", []byte("hello"), "paris-1", ErrBadCSR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ca.Sign(tc.csr, tc.cn, Profile{}); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	certPEM, cert, err := ca.Sign(good, "paris-1", Profile{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24; d < DefaultDays || d > DefaultDays+1 {
		t.Errorf("validity %.1f days, want %d", d, DefaultDays)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || len(cert.DNSNames)+len(cert.IPAddresses) != 0 {
		t.Errorf("fleet certificate usages %v names %v %v", cert.ExtKeyUsage, cert.DNSNames, cert.IPAddresses)
	}
	kept, err := os.ReadFile(filepath.Join(ca.Dir, IssuedDir, SerialHex(cert.SerialNumber)+".pem"))
	if err != nil || string(kept) != string(certPEM) {
		t.Errorf("issued copy: %v", err)
	}
	// openssl agrees it is a client certificate of this CA.
	f := filepath.Join(t.TempDir(), "c.pem")
	os.WriteFile(f, certPEM, 0o600)
	openssl(t, ca.Dir, "verify", "-CAfile", CertFile, "-purpose", "sslclient", f)
}

// ca init keeps the CA the README's openssl recipe made, and its CRL is
// one openssl accepts, with the revoked serials and a rising number.
func TestOpenSSLCAAdoptedAndCRL(t *testing.T) {
	dir := t.TempDir()
	openssl(t, dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Example moh CA")
	before, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	ca, created, err := Init(dir, "", 0, nil)
	if err != nil || created {
		t.Fatalf("init over an openssl CA: %v, created %v", err, created)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(after) != string(before) {
		t.Fatal("ca init replaced the existing CA")
	}
	out := openssl(t, dir, "crl", "-in", CRLFile, "-CAfile", CertFile, "-noout", "-text")
	if !strings.Contains(out, "No Revoked Certificates") {
		t.Errorf("fresh CRL:\n%s", out)
	}
	_, c1, _ := ca.Sign(csrFor(t, "a", nil), "a", Profile{})
	_, c2, _ := ca.Sign(csrFor(t, "b", nil), "b", Profile{Server: true, Hosts: []string{"b.example", "10.0.0.2"}})
	if len(c2.DNSNames) != 1 || len(c2.IPAddresses) != 1 || c2.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("https certificate names %v %v usages %v", c2.DNSNames, c2.IPAddresses, c2.ExtKeyUsage)
	}
	if err := ca.Revoke(nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke(nil, 0); err != nil {
		t.Fatal(err)
	}
	// Revoking twice lists a serial once.
	if err := ca.Revoke(append([]*big.Int{c1.SerialNumber}, c1.SerialNumber), 0); err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoke([]*big.Int{c2.SerialNumber}, 30); err != nil {
		t.Fatal(err)
	}
	out = openssl(t, dir, "crl", "-in", CRLFile, "-CAfile", CertFile, "-noout", "-text")
	// init's empty CRL, three renewals, two revokes: number 6.
	flat := strings.Join(strings.Fields(out), " ")
	for _, s := range []string{SerialHex(c1.SerialNumber), SerialHex(c2.SerialNumber), "verify OK", "X509v3 CRL Number: 6 "} {
		if !strings.Contains(flat, s) {
			t.Errorf("CRL lacks %q:\n%s", s, out)
		}
	}
	got, _ := ca.Revoked()
	if len(got) != 2 {
		t.Errorf("revoked %v, want 2 serials", got)
	}
	// openssl verify with the CRL refuses the revoked certificate.
	f := filepath.Join(t.TempDir(), "c1.pem")
	os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c1.Raw}), 0o600)
	cmd := exec.Command("openssl", "verify", "-crl_check", "-CAfile", CertFile, "-CRLfile", CRLFile, f)
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(o), "revoked") {
		t.Errorf("openssl verify of a revoked certificate: %v %s", err, o)
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]string{
		"4C1CF35B": "4C1CF35B", "4c:1c:f3:5b": "4C1CF35B", "serial=4C1CF35B": "4C1CF35B", "0x10": "10", "0xabc": "0ABC",
	} {
		n, err := ParseSerial(in)
		if err != nil || SerialHex(n) != want {
			t.Errorf("ParseSerial(%q) = %v, %v", in, n, err)
		}
	}
	for _, bad := range []string{"", "xyz", "0", "-5"} {
		if _, err := ParseSerial(bad); err == nil {
			t.Errorf("ParseSerial(%q) accepted", bad)
		}
	}
}

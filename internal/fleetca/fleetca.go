// Package fleetca is the fleet's certificate authority on the operator's
// machine: it signs the CSRs boxes make for their own keys and keeps the
// certificate revocation list the broker checks (mosquitto's crlfile).
//
// A CA directory holds ca.pem and ca.key — the very files the openssl
// recipe in fleet/README.md makes, so an existing fleet CA is used as it
// is — plus crl.pem and issued/<serial>.pem, a copy of every certificate
// signed, so a serial can be traced back to a box.
package fleetca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// Files inside a CA directory.
const (
	CertFile  = "ca.pem"
	KeyFile   = "ca.key"
	CRLFile   = "crl.pem"
	IssuedDir = "issued"
)

// DefaultDays is the validity of a signed certificate: 397 days, the
// longest browsers accept for a server certificate, and short enough
// that a forgotten box certificate cannot outlive a key compromise by
// years.
const DefaultDays = 397

// DefaultCRLDays is how long a CRL stays valid. OpenSSL (and so
// mosquitto) refuses every client once the CRL's next update has passed,
// so it is long, and re-issued by every revoke (`mohctl ca revoke` with
// no serial just renews it).
const DefaultCRLDays = 365

// Errors a caller maps to its own messages.
var (
	ErrCNMismatch = errors.New("csr common name does not match the device")
	ErrBadCSR     = errors.New("bad csr")
)

// CA is an opened CA directory.
type CA struct {
	Dir  string
	Cert *x509.Certificate
	key  crypto.Signer
	Now  func() time.Time
}

// Init makes dir a CA directory. Existing ca.pem and ca.key (the
// openssl-made fleet CA) are kept and only checked; otherwise a new
// ECDSA P-256 CA named cn is created, valid for years. Either way an
// empty CRL is written if there is none, because mosquitto with crlfile
// refuses every client while the file is missing.
func Init(dir, cn string, years int, now func() time.Time) (*CA, bool, error) {
	if now == nil {
		now = time.Now
	}
	created := false
	_, errC := os.Stat(filepath.Join(dir, CertFile))
	_, errK := os.Stat(filepath.Join(dir, KeyFile))
	switch {
	case errC == nil && errK == nil:
	case errors.Is(errC, os.ErrNotExist) && errors.Is(errK, os.ErrNotExist):
		if err := create(dir, cn, years, now()); err != nil {
			return nil, false, err
		}
		created = true
	default:
		return nil, false, fmt.Errorf("ca dir %s: need both %s and %s, or neither", dir, CertFile, KeyFile)
	}
	ca, err := Open(dir)
	if err != nil {
		return nil, false, err
	}
	ca.Now = now
	if _, err := os.Stat(filepath.Join(dir, CRLFile)); errors.Is(err, os.ErrNotExist) {
		if err := ca.Revoke(nil, DefaultCRLDays); err != nil {
			return nil, false, err
		}
	}
	return ca, created, nil
}

func create(dir, cn string, years int, now time.Time) error {
	if cn == "" {
		cn = "moh fleet CA"
	}
	if years <= 0 {
		years = 10
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create ca dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ca key: %w", err)
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(years, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create ca certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode ca key: %w", err)
	}
	// Key first: a cut between the writes leaves a key without a
	// certificate, which Init refuses rather than silently replacing.
	if err := atomicfile.WriteFile(filepath.Join(dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("store ca key: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("store ca certificate: %w", err)
	}
	return nil
}

// Open loads a CA directory.
func Open(dir string) (*CA, error) {
	cb, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("read ca certificate: %w", err)
	}
	cert, err := ParseCert(cb)
	if err != nil {
		return nil, fmt.Errorf("ca certificate %s: %w", filepath.Join(dir, CertFile), err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("ca certificate %s is not a CA (basicConstraints CA:TRUE missing)", filepath.Join(dir, CertFile))
	}
	kb, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("read ca key: %w", err)
	}
	key, err := ParseKey(kb)
	if err != nil {
		return nil, fmt.Errorf("ca key %s: %w", filepath.Join(dir, KeyFile), err)
	}
	if !publicEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("ca key %s does not belong to %s", KeyFile, CertFile)
	}
	return &CA{Dir: dir, Cert: cert, key: key, Now: time.Now}, nil
}

// Profile says what a signed certificate is for.
type Profile struct {
	// Server makes an HTTPS server certificate (serverAuth, with Hosts
	// as its names); otherwise a fleet client certificate (clientAuth
	// only, no names, so it can never pose as the broker).
	Server bool
	// Hosts are DNS names or IP addresses; only for Server. They come
	// from the operator (the inventory), never from the CSR: a box must
	// not pick the names it is trusted for.
	Hosts []string
	// Days of validity (0: DefaultDays).
	Days int
}

// Sign checks csrPEM — a valid self-signature, an ECDSA P-256 key, and
// the common name wantCN, the device the CSR came from — and signs it.
// The certificate is kept under issued/ and returned as PEM.
func (ca *CA) Sign(csrPEM []byte, wantCN string, p Profile) ([]byte, *x509.Certificate, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("%w: key must be ECDSA P-256", ErrBadCSR)
	}
	if wantCN == "" || csr.Subject.CommonName != wantCN {
		return nil, nil, fmt.Errorf("%w: csr says CN=%q, it came from %q", ErrCNMismatch, csr.Subject.CommonName, wantCN)
	}
	days := p.Days
	if days <= 0 {
		days = DefaultDays
	}
	now := ca.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: wantCN},
		NotBefore:    now.Add(-5 * time.Minute), // a box clock slightly behind
		NotAfter:     now.AddDate(0, 0, days),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range p.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		if len(p.Hosts) == 0 {
			return nil, nil, errors.New("an https certificate needs at least one host name")
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.MkdirAll(filepath.Join(ca.Dir, IssuedDir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("issued dir: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(ca.Dir, IssuedDir, SerialHex(cert.SerialNumber)+".pem"), out, 0o644); err != nil {
		return nil, nil, fmt.Errorf("keep issued certificate: %w", err)
	}
	return out, cert, nil
}

// Issued reports whether cert was signed by this CA.
func (ca *CA) Issued(cert *x509.Certificate) bool {
	return cert.CheckSignatureFrom(ca.Cert) == nil
}

// Revoked returns the serials the current CRL lists (none if there is
// no CRL yet).
func (ca *CA) Revoked() ([]*big.Int, error) {
	crl, err := ca.readCRL()
	if err != nil || crl == nil {
		return nil, err
	}
	out := make([]*big.Int, 0, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, e.SerialNumber)
	}
	return out, nil
}

func (ca *CA) readCRL() (*x509.RevocationList, error) {
	b, err := os.ReadFile(filepath.Join(ca.Dir, CRLFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read crl: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "X509 CRL" {
		return nil, fmt.Errorf("crl %s: no PEM X509 CRL", filepath.Join(ca.Dir, CRLFile))
	}
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse crl: %w", err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("crl %s was not signed by this CA: %w", CRLFile, err)
	}
	return crl, nil
}

// Revoke adds serials to the CRL and re-issues it (a higher number, a
// fresh next update crlDays ahead), written atomically. No serials just
// renews it.
func (ca *CA) Revoke(serials []*big.Int, crlDays int) error {
	if crlDays <= 0 {
		crlDays = DefaultCRLDays
	}
	old, err := ca.readCRL()
	if err != nil {
		return err
	}
	now := ca.Now().UTC()
	var entries []x509.RevocationListEntry
	number := big.NewInt(1)
	if old != nil {
		entries = old.RevokedCertificateEntries
		if old.Number != nil {
			number = new(big.Int).Add(old.Number, big.NewInt(1))
		}
	}
	for _, s := range serials {
		if slices.ContainsFunc(entries, func(e x509.RevocationListEntry) bool { return e.SerialNumber.Cmp(s) == 0 }) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now.Add(-5 * time.Minute),
		NextUpdate:                now.AddDate(0, 0, crlDays),
	}
	// A copy, adjusted for what Go insists on and openssl's CAs may
	// lack; it only feeds the checks, the CRL names ca.Cert as issuer.
	issuer := *ca.Cert
	if len(issuer.SubjectKeyId) == 0 {
		// Go puts the issuer's key id in the CRL: computed the way
		// openssl's subjectKeyIdentifier=hash does.
		if issuer.SubjectKeyId, err = keyID(issuer.PublicKey); err != nil {
			return err
		}
	}
	if issuer.KeyUsage == 0 {
		// No keyUsage extension (`openssl req -x509` adds none) allows
		// every usage (RFC 5280 4.2.1.3); Go wants the cRLSign bit.
		issuer.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, &issuer, ca.key)
	if err != nil {
		return fmt.Errorf("create crl: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(ca.Dir, CRLFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("store crl: %w", err)
	}
	return nil
}

// ParseCert reads the first certificate of a PEM file.
func ParseCert(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM certificate")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// ParseCSR reads a PEM certificate request.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST", ErrBadCSR)
		}
		if blk.Type == "CERTIFICATE REQUEST" || blk.Type == "NEW CERTIFICATE REQUEST" {
			csr, err := x509.ParseCertificateRequest(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
			}
			return csr, nil
		}
	}
}

// ParseKey reads a PKCS#8 or SEC 1 (openssl's two) PEM private key.
func ParseKey(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key")
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, errors.New("key cannot sign")
			}
			return s, nil
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(blk.Bytes)
		}
	}
}

// ParseSerial reads a serial as openssl prints it (hex, optionally with
// colons or 0x) — the form `openssl x509 -serial` and `mohctl cert
// rotate` show.
func ParseSerial(s string) (*big.Int, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	h = strings.TrimPrefix(strings.TrimPrefix(h, "serial="), "0x")
	h = strings.ReplaceAll(h, ":", "")
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || h == "" || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: want hex digits", s)
	}
	return n, nil
}

// SerialHex prints a serial the way openssl does: upper-case hex, whole
// bytes (a leading 0 when the first digit would stand alone).
func SerialHex(n *big.Int) string {
	h := strings.ToUpper(n.Text(16))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}

func newSerial() *big.Int {
	// 127 random bits: unique without a counter to keep in sync, and
	// positive as RFC 5280 wants.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// keyID is the RFC 5280 method-1 key identifier (SHA-1 of the public
// key bits), what openssl's subjectKeyIdentifier=hash computes.
func keyID(pub any) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	var spki struct {
		Algo      pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

func publicEqual(a crypto.PublicKey, b any) bool {
	ae, err1 := x509.MarshalPKIXPublicKey(a)
	be, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ae, be)
}

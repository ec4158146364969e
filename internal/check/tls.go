package check

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mohproject/moh/internal/capool"
)

// TLSClient returns the client a remote check uses against a box serving
// HTTPS with a certificate no public CA signed (the appliance's own
// self-signed one, or one from the company CA):
//   - pinSHA256, the SHA-256 fingerprint of the box's certificate as
//     `openssl x509 -noout -fingerprint -sha256` prints it (colons and case
//     do not matter), trusts exactly that certificate;
//   - caFile trusts the PEM CA certificates in it, with the usual name
//     checks.
//
// Both empty returns nil: the system's trust store applies.
func TLSClient(caFile, pinSHA256 string) (*http.Client, error) {
	if caFile == "" && pinSHA256 == "" {
		return nil, nil
	}
	cfg, err := capool.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	if pinSHA256 != "" {
		want, err := parseFingerprint(pinSHA256)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain and name checks: it names the one
		// certificate to accept.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the box sent no certificate")
			}
			got := sha256.Sum256(raw[0])
			if string(got[:]) != string(want) {
				return fmt.Errorf("certificate fingerprint %s does not match the pinned one", hex.EncodeToString(got[:]))
			}
			return nil
		}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

func parseFingerprint(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	s = strings.TrimPrefix(s, "sha256 fingerprint=")
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("--pin-sha256 %q: want the certificate's SHA-256 fingerprint, 64 hex digits (colons allowed)", s)
	}
	return b, nil
}

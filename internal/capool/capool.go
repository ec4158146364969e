// Package capool loads the PEM CA certificates moh is told to trust (the
// fleet CA, a company CA) into a certificate pool, and builds the TLS and
// HTTP clients that trust them: one place for the file's errors and the
// TLS floor, used by the fleet link, the box's fetches, mohctl and the
// remote checks.
package capool

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Load returns a pool holding only the certificates in file.
func Load(file string) (*x509.CertPool, error) {
	return AddTo(x509.NewCertPool(), file)
}

// WithSystem returns the operating system's trust store plus the
// certificates in file (none if file is empty). A system without a store
// gets the file's certificates alone.
func WithSystem(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	return AddTo(pool, file)
}

// AddTo appends the PEM certificates in file to pool. A file with no
// certificate in it is an error: trusting nothing new by mistake would
// surface later as a puzzling "unknown authority".
func AddTo(pool *x509.CertPool, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

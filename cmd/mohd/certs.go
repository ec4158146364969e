package main

import (
	"path/filepath"

	"github.com/mohproject/moh/fleet"
)

// certDir is where certificate rotation (mohctl cert rotate) keeps the
// box's rotated pairs: on the data partition, because --mqtt-cert and
// --tls-cert may point into a read-only /etc on the image.
func certDir(c *config) string { return filepath.Join(c.Data, "fleet") }

// httpsPair is what the web server serves: a rotated pair in the data
// dir wins over --tls-cert/--tls-key and over --tls auto.
func httpsPair(c *config) (certFile, keyFile string, auto bool) {
	if c.TLSCert != "" || c.TLS == "auto" {
		if f, _ := fleet.ActivePair(certDir(c), fleet.CertKindHTTPS, "", ""); f != "" {
			return f, f, false
		}
	}
	return c.TLSCert, c.TLSKey, c.TLS == "auto"
}

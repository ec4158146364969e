package fleet

import (
	"crypto/tls"
	"fmt"

	"github.com/mohproject/moh/internal/capool"
)

// TLSConfig builds the mutual-TLS configuration both ends use: the broker
// is trusted only if signed by the company CA in caFile, and the client
// proves who it is with certFile/keyFile. An empty caFile uses the system
// roots; empty cert and key send no client certificate.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg, err := capool.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("client certificate and key must be given together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

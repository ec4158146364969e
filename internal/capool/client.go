package capool

import (
	"crypto/tls"
	"net/http"
	"time"
)

// ClientConfig is the TLS client configuration of a link that trusts only
// the certificates in caFile (the fleet broker, a box checked remotely);
// an empty caFile keeps the system's roots. TLS 1.2 at least.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := Load(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// HTTPClient is the client of the box's downloads (tracks, update
// bundles): it trusts the system roots and, beside them, the certificates
// in caFile, since the fleet CA that signed the broker usually signs the
// company's file server too, while a public file server must keep
// working. timeout bounds one whole download.
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	pool, err := WithSystem(caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

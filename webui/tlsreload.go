package webui

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// certSlot is the certificate the HTTPS server presents, read at every
// handshake (tls.Config.GetCertificate), so a rotated certificate is
// served from the next connection on without a restart and without
// dropping the connections already open.
type certSlot struct {
	p atomic.Pointer[tls.Certificate]
}

// adoptCerts moves tc's certificate behind a slot. nil tc (plain HTTP)
// gives a nil slot.
func adoptCerts(tc *tls.Config) *certSlot {
	if tc == nil || len(tc.Certificates) == 0 {
		return nil
	}
	s := &certSlot{}
	c := tc.Certificates[0]
	s.p.Store(&c)
	tc.Certificates = nil
	tc.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.p.Load(), nil }
	return s
}

// ReloadTLS serves the pair in certFile and keyFile (they may be one
// file holding both) from the next handshake on. The pair is loaded and
// checked first: a bad one changes nothing.
func (s *Server) ReloadTLS(certFile, keyFile string) error {
	if s.certs == nil {
		return errors.New("tls: this server speaks plain HTTP")
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls: load key pair: %w", err)
	}
	s.certs.p.Store(&c)
	s.log.Info("tls: serving a new certificate", "cert", certFile)
	return nil
}

// TLSCertificate is the certificate served now.
func (s *Server) TLSCertificate() (*x509.Certificate, error) {
	if s.certs == nil {
		return nil, errors.New("tls: this server speaks plain HTTP")
	}
	c := s.certs.p.Load()
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}

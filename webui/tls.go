package webui

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// Where --tls auto keeps its certificate, inside the data dir.
const (
	AutoCertFile = "tls-cert.pem"
	AutoKeyFile  = "tls-key.pem"
)

// loadTLS returns the server's TLS config, or nil for plain HTTP.
func loadTLS(o Options, log *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := o.TLSCert, o.TLSKey
	switch {
	case o.TLSAuto && (certFile != "" || keyFile != ""):
		return nil, errors.New("tls: choose either a certificate and key or auto, not both")
	case o.TLSAuto:
		var err error
		certFile, keyFile, err = EnsureSelfSigned(o.DataDir, o.Now)
		if err != nil {
			return nil, err
		}
		log.Info("tls: using the self-signed certificate kept in the data dir", "cert", certFile)
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("tls: both a certificate and a key are needed")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// EnsureSelfSigned creates a self-signed certificate for this box in
// dataDir unless one is there already, and returns the file paths. It is
// generated once and kept, so browsers that were told to trust it keep
// trusting it across restarts.
func EnsureSelfSigned(dataDir string, now func() time.Time) (certFile, keyFile string, err error) {
	if now == nil {
		now = time.Now
	}
	certFile = filepath.Join(dataDir, AutoCertFile)
	keyFile = filepath.Join(dataDir, AutoKeyFile)
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return certFile, keyFile, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", fmt.Errorf("tls: create data dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return "", "", fmt.Errorf("tls: serial: %w", err)
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "moh " + host, Organization: []string{"moh appliance"}},
		NotBefore:             now().Add(-time.Hour),
		NotAfter:              now().AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host, host+".local")
	}
	// The box's current addresses, so a browser pointed at its IP sees a
	// name match once the admin trusts the certificate.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ipn.IP)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("tls: create certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("tls: encode key: %w", err)
	}
	// Key first: a cut between the two writes leaves a key without a
	// certificate, which the next start regenerates.
	if err := atomicfile.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", fmt.Errorf("tls: store key: %w", err)
	}
	if err := atomicfile.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", fmt.Errorf("tls: store certificate: %w", err)
	}
	return certFile, keyFile, nil
}

package fleettest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// SignCSR signs a client certificate for the key in csrPEM, named cn,
// as the fleet CA would for a box rotating its certificate.
func (ca *CA) SignCSR(csrPEM []byte, cn string) ([]byte, error) {
	blk, _ := pem.Decode(csrPEM)
	if blk == nil {
		return nil, errors.New("no PEM CSR")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	tmpl := ca.clientTemplate(cn)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

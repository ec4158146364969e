package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/capool"
	"github.com/mohproject/moh/internal/fleetca"
)

// Certificate rotation on the box (`mohctl cert rotate`). The box makes
// the new private key itself and only ever sends a CSR out; the key never
// leaves the data dir. Files in the agent's CertDir (DATA/fleet):
//
//	<kind>.key.new  the key made by cert_csr, waiting for its certificate
//	<kind>.pem      the installed pair, certificate and key in one file,
//	                so one atomic rename switches both together; it takes
//	                precedence over --mqtt-cert/--mqtt-key (which may sit
//	                in a read-only /etc)
//	<kind>.old.pem  the previous pair, kept only until the new one has
//	                connected; found at start it means an install was
//	                cut short, and the box falls back to it if the new
//	                pair does not connect
const (
	CertKindFleet = "fleet"
	CertKindHTTPS = "https"
)

// CodeCertRefused is the reply code of a cert_install whose certificate
// the broker did not accept: the box is back on its old pair.
const CodeCertRefused = "cert_refused"

// CSRResult is the result of OpCertCSR.
type CSRResult struct {
	Kind string `json:"kind"`
	CSR  string `json:"csr"`
}

// InstallResult is the result of OpCertInstall: the new certificate's
// serial and the certificate it replaced, for the operator to revoke.
type InstallResult struct {
	Kind      string `json:"kind"`
	Serial    string `json:"serial"`
	OldSerial string `json:"old_serial,omitempty"`
	OldCert   string `json:"old_cert,omitempty"`
}

// PairFile is where the rotated pair of kind lives in certDir.
func PairFile(certDir, kind string) string { return filepath.Join(certDir, kind+".pem") }

func pendingKeyFile(certDir, kind string) string { return filepath.Join(certDir, kind+".key.new") }
func oldPairFile(certDir, kind string) string    { return filepath.Join(certDir, kind+".old.pem") }

// ActivePair returns the certificate and key files to use for kind: the
// rotated pair in certDir when there is one, else the configured files.
func ActivePair(certDir, kind, certFile, keyFile string) (string, string) {
	if certDir != "" {
		p := PairFile(certDir, kind)
		if _, err := os.Stat(p); err == nil {
			return p, p
		}
	}
	return certFile, keyFile
}

// certCSR answers OpCertCSR: a key made here, written atomically (0600)
// next to the current pair, and a CSR for it with the device id as CN.
// A key already waiting is reused, so asking twice (a rerun of the
// hand-off) does not orphan a CSR already given to the CA.
func (a *Agent) certCSR(cmd Command) Reply {
	kind, rep := a.certKind(cmd)
	if rep != nil {
		return *rep
	}
	dir := a.o.CertDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(CodeFailed, "cert dir: "+err.Error())
	}
	pf := pendingKeyFile(dir, kind)
	var key *ecdsa.PrivateKey
	if b, err := os.ReadFile(pf); err == nil {
		if k, err := fleetca.ParseKey(b); err == nil {
			key, _ = k.(*ecdsa.PrivateKey)
		}
	}
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fail(CodeFailed, "generate key: "+err.Error())
		}
		kb, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return fail(CodeFailed, "encode key: "+err.Error())
		}
		if err := atomicfile.WriteFile(pf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			return fail(CodeFailed, "store key: "+err.Error())
		}
		key = k
		a.log.Info("made a new key for certificate rotation", "kind", kind, "file", pf)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: a.o.DeviceID}}, key)
	if err != nil {
		return fail(CodeFailed, "create csr: "+err.Error())
	}
	return okResult(CSRResult{Kind: kind, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
}

func (a *Agent) certKind(cmd Command) (string, *Reply) {
	kind := cmd.Kind
	if kind == "" {
		kind = CertKindFleet
	}
	switch {
	case a.o.CertDir == "":
		r := fail(CodeBadRequest, "certificate rotation is off on this box (no data dir for certificates)")
		return "", &r
	case kind == CertKindFleet && a.rot == nil:
		r := fail(CodeBadRequest, "this box connects without a client certificate of its own")
		return "", &r
	case kind == CertKindHTTPS && a.o.InstallHTTPS == nil:
		r := fail(CodeBadRequest, "this box serves no HTTPS certificate it can rotate")
		return "", &r
	case kind != CertKindFleet && kind != CertKindHTTPS:
		r := fail(CodeBadRequest, fmt.Sprintf("unknown certificate kind %q (fleet or https)", kind))
		return "", &r
	}
	return kind, nil
}

// checkIssued checks a certificate offered for the pending key: it must
// be for that key, name this device, be valid now and (for the fleet
// pair) chain to the CA the box trusts for the broker, since the broker
// trusts the same CA.
func (a *Agent) checkIssued(kind string, chainPEM []byte) (pair []byte, leaf *x509.Certificate, err error) {
	kb, err := os.ReadFile(pendingKeyFile(a.o.CertDir, kind))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, errors.New("no key waiting for a certificate: send cert_csr first")
	}
	if err != nil {
		return nil, nil, err
	}
	key, err := fleetca.ParseKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("pending key: %w", err)
	}
	var certs []*x509.Certificate
	var certPEM []byte
	for rest := chainPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue // a private key has no business here; drop it
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("certificate: %w", err)
		}
		certs = append(certs, c)
		certPEM = append(certPEM, pem.EncodeToMemory(blk)...)
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("no PEM certificate")
	}
	leaf = certs[0]
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	lpub, _ := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if string(pub) != string(lpub) {
		return nil, nil, errors.New("the certificate is not for the key this box made (an older CSR?)")
	}
	if leaf.Subject.CommonName != a.o.DeviceID {
		return nil, nil, fmt.Errorf("the certificate names %q, this box is %q", leaf.Subject.CommonName, a.o.DeviceID)
	}
	now := a.now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("the certificate is valid from %s to %s, not now", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if kind == CertKindFleet && a.o.CAFile != "" {
		roots, err := capool.Load(a.o.CAFile)
		if err != nil {
			return nil, nil, err
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return nil, nil, fmt.Errorf("the certificate does not chain to the fleet CA as a client certificate: %w", err)
		}
	}
	return append(append(certPEM, '\n'), kb...), leaf, nil
}

// certInstall answers OpCertInstall. For the fleet pair: the old pair is
// kept, the new one written (one file, atomically), the connection
// dropped so the next handshake uses it, and the reply waits until the
// broker accepted it — so the operator revokes the old certificate only
// once the new one works. If the broker does not take the new pair
// within the confirm time, the box goes back to the old one and says so.
func (a *Agent) certInstall(ctx context.Context, cmd Command) Reply {
	kind, rep := a.certKind(cmd)
	if rep != nil {
		return *rep
	}
	if kind == CertKindHTTPS {
		return a.installHTTPS(cmd)
	}
	r := a.rot
	r.install.Lock()
	defer r.install.Unlock()
	if r.dialer() == nil {
		return fail(CodeFailed, "cannot rotate through a proxy (all_proxy): the box cannot force the reconnection")
	}
	pair, leaf, err := a.checkIssued(kind, []byte(cmd.Cert))
	if err != nil {
		return fail(CodeBadRequest, err.Error())
	}
	cert, err := tls.X509KeyPair(pair, pair)
	if err != nil {
		return fail(CodeBadRequest, "pair: "+err.Error())
	}
	r.mu.Lock()
	oldPEM, oldLeaf := r.activePEM, r.active.Leaf
	r.mu.Unlock()
	if err := atomicfile.WriteFile(oldPairFile(r.dir, kind), oldPEM, 0o600); err != nil {
		return fail(CodeFailed, "keep old pair: "+err.Error())
	}
	if err := atomicfile.WriteFile(PairFile(r.dir, kind), pair, 0o600); err != nil {
		os.Remove(oldPairFile(r.dir, kind))
		return fail(CodeFailed, "store new pair: "+err.Error())
	}
	os.Remove(pendingKeyFile(r.dir, kind)) // the key lives in the pair now
	log := a.log.With("kind", kind, "serial", fleetca.SerialHex(leaf.SerialNumber))
	log.Info("installed a new certificate; reconnecting with it")
	gen := r.switchTo(&cert, pair)
	r.kick()
	if r.waitUp(ctx, gen, r.confirm) {
		os.Remove(oldPairFile(r.dir, kind))
		log.Info("the broker accepted the new certificate; old pair removed")
		return okResult(installResult(kind, leaf, oldLeaf))
	}
	log.Error("the broker did not accept the new certificate; back on the old pair", "within", r.confirm)
	if err := r.restoreOld(); err != nil {
		return fail(CodeFailed, "the new certificate did not connect and the old pair could not be restored: "+err.Error())
	}
	back := "reconnected"
	r.mu.Lock()
	g := r.gen
	r.mu.Unlock()
	if !r.waitUp(context.Background(), g, r.confirm) {
		back = "not reconnected yet"
	}
	return fail(CodeCertRefused, fmt.Sprintf("the broker did not accept the new certificate (serial %s) within %s; back on the old pair (%s)",
		fleetca.SerialHex(leaf.SerialNumber), r.confirm, back))
}

// installHTTPS switches the box's HTTPS pair: written like the fleet
// pair, then handed to the web server, which serves it from the next
// handshake without a restart.
func (a *Agent) installHTTPS(cmd Command) Reply {
	pair, leaf, err := a.checkIssued(CertKindHTTPS, []byte(cmd.Cert))
	if err != nil {
		return fail(CodeBadRequest, err.Error())
	}
	if _, err := tls.X509KeyPair(pair, pair); err != nil {
		return fail(CodeBadRequest, "pair: "+err.Error())
	}
	pf := PairFile(a.o.CertDir, CertKindHTTPS)
	var oldLeaf *x509.Certificate
	if old, err := a.o.CurrentHTTPS(); err == nil {
		oldLeaf = old
	}
	if err := atomicfile.WriteFile(pf, pair, 0o600); err != nil {
		return fail(CodeFailed, "store new pair: "+err.Error())
	}
	os.Remove(pendingKeyFile(a.o.CertDir, CertKindHTTPS))
	if err := a.o.InstallHTTPS(pf); err != nil {
		return fail(CodeFailed, "serve new https certificate: "+err.Error())
	}
	a.log.Info("installed a new https certificate", "serial", fleetca.SerialHex(leaf.SerialNumber))
	return okResult(installResult(CertKindHTTPS, leaf, oldLeaf))
}

// installResult names the installed certificate and the one it replaced
// (nil: none known), which the operator then revokes.
func installResult(kind string, leaf, oldLeaf *x509.Certificate) InstallResult {
	res := InstallResult{Kind: kind, Serial: fleetca.SerialHex(leaf.SerialNumber)}
	if oldLeaf != nil {
		res.OldSerial = fleetca.SerialHex(oldLeaf.SerialNumber)
		res.OldCert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: oldLeaf.Raw}))
	}
	return res
}

// RotateHTTPS lets cert_install of kind https reach the web server:
// install serves the pair in a file from the next handshake, current is
// the certificate served now. Call before Run.
func (a *Agent) RotateHTTPS(install func(pairFile string) error, current func() (*x509.Certificate, error)) {
	a.o.InstallHTTPS, a.o.CurrentHTTPS = install, current
}

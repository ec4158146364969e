package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/fleetca"
)

// caCmd is the fleet CA on the operator's machine (internal/fleetca):
// the directory of fleet/README.md 3.2 (ca.pem, ca.key) plus the CRL the
// broker reads.
type caCmd struct {
	Init   caInitCmd   `cmd:"" help:"Make DIR a fleet CA: keeps an existing ca.pem/ca.key (the openssl-made CA), else creates an ECDSA P-256 CA; writes an empty crl.pem if there is none."`
	Sign   caSignCmd   `cmd:"" help:"Sign box CSRs (DEVICE.csr, as cert rotate --csr-out writes them): checks each CSR's signature and that its CN is the device it came from; writes DEVICE.pem beside it."`
	Revoke caRevokeCmd `cmd:"" help:"Add certificates (serial in hex, or a PEM file) to crl.pem, the broker's crlfile; with none, renew the CRL's validity."`
}

// caDirFlag is the CA directory. (--ca is taken: it is the global flag
// naming the CA file the broker's certificate is checked against.)
type caDirFlag struct {
	CADir string `name:"ca-dir" required:"" placeholder:"DIR" help:"The fleet CA directory (ca.pem, ca.key, crl.pem)."`
}

type caInitCmd struct {
	Dir   string `arg:"" placeholder:"DIR" help:"The CA directory (created if missing)."`
	CN    string `name:"cn" placeholder:"NAME" default:"moh fleet CA" help:"Name of a new CA (default: ${default})."`
	Years int    `placeholder:"N" default:"10" help:"Validity of a new CA in years (default ${default})."`
}

func (i *caInitCmd) run(ctx context.Context, c *cli) (int, error) {
	ca, created, err := fleetca.Init(i.Dir, i.CN, i.Years, c.now)
	if err != nil {
		return exitFailed, err
	}
	what := "kept the existing CA"
	if created {
		what = "created a new CA"
	}
	fmt.Fprintf(c.stdout, "%s: %s %q, valid until %s; CRL %s\n", i.Dir, what, ca.Cert.Subject.CommonName,
		ca.Cert.NotAfter.UTC().Format("2006-01-02"), filepath.Join(i.Dir, fleetca.CRLFile))
	return exitOK, nil
}

// signFlags are how a CSR is signed, shared by ca sign and cert rotate.
type signFlags struct {
	Kind string   `enum:"fleet,https" default:"fleet" placeholder:"fleet|https" help:"fleet: the box's MQTT client certificate; https: its web server certificate (default ${default})."`
	Days int      `placeholder:"N" default:"397" help:"Validity of the signed certificates in days (default ${default})."`
	Host []string `placeholder:"HOST" help:"ca sign --kind https: the names the certificate is for (cert rotate takes them from the inventory URL)."`
}

func (f signFlags) profile(hosts []string) fleetca.Profile {
	return fleetca.Profile{Server: f.Kind == fleet.CertKindHTTPS, Hosts: hosts, Days: f.Days}
}

// csrName is the file name of a box's CSR in the hand-off directory;
// certName that of its signed certificate.
func csrName(device, kind string) string {
	if kind == fleet.CertKindHTTPS {
		return device + ".https.csr"
	}
	return device + ".csr"
}

func certName(device, kind string) string {
	if kind == fleet.CertKindHTTPS {
		return device + ".https.pem"
	}
	return device + ".pem"
}

type caSignCmd struct {
	caDirFlag `embed:""`
	signFlags `embed:""`
	Device    string   `placeholder:"ID" help:"The device the (one) CSR came from, when its file is not named DEVICE.csr."`
	Out       string   `placeholder:"DIR" help:"Where to write the certificates (default: beside each CSR)."`
	CSR       []string `arg:"" placeholder:"CSR" help:"CSR files, DEVICE.csr (DEVICE.https.csr with --kind https)."`
}

func (s *caSignCmd) run(ctx context.Context, c *cli) (int, error) {
	if s.Device != "" && len(s.CSR) > 1 {
		return exitUsage, fmt.Errorf("%w: --device names the device of one CSR, not %d", errUsage, len(s.CSR))
	}
	if s.Kind == fleet.CertKindHTTPS && len(s.Host) == 0 {
		return exitUsage, fmt.Errorf("%w: --kind https needs --host with the name(s) the box is reached by", errUsage)
	}
	ca, err := c.openCA(s.CADir)
	if err != nil {
		return exitFailed, err
	}
	var res []outcome
	for _, f := range s.CSR {
		dev := s.Device
		if dev == "" {
			dev = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".csr"), ".https")
		}
		msg, err := signFile(ca, f, dev, s.Out, s.signFlags)
		if err != nil {
			res = append(res, outcome{Box: dev, Err: err.Error()})
			continue
		}
		res = append(res, outcome{Box: dev, OK: true, Msg: msg})
	}
	return c.report("ca sign", res), nil
}

func signFile(ca *fleetca.CA, file, device, outDir string, f signFlags) (string, error) {
	if err := fleet.ValidName(device); err != nil {
		return "", fmt.Errorf("device: %w", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	pemCert, cert, err := ca.Sign(b, device, f.profile(f.Host))
	if err != nil {
		return "", err
	}
	if outDir == "" {
		outDir = filepath.Dir(file)
	}
	out := filepath.Join(outDir, certName(device, f.Kind))
	if err := atomicfile.WriteFile(out, pemCert, 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("signed: serial %s, valid until %s, %s", fleetca.SerialHex(cert.SerialNumber),
		cert.NotAfter.UTC().Format("2006-01-02"), out), nil
}

type caRevokeCmd struct {
	caDirFlag `embed:""`
	CRLDays   int      `name:"crl-days" placeholder:"N" default:"365" help:"Validity of the new CRL in days: the broker refuses every client once it has passed (default ${default})."`
	What      []string `arg:"" optional:"" placeholder:"SERIAL|CERT" help:"Serials (hex, as openssl and cert rotate print them) or certificate files."`
}

func (r *caRevokeCmd) run(ctx context.Context, c *cli) (int, error) {
	ca, err := c.openCA(r.CADir)
	if err != nil {
		return exitFailed, err
	}
	var serials []*big.Int
	for _, w := range r.What {
		s, err := revokeTarget(ca, w)
		if err != nil {
			return exitFailed, fmt.Errorf("%s: %w", w, err)
		}
		serials = append(serials, s)
	}
	if err := ca.Revoke(serials, r.CRLDays); err != nil {
		return exitFailed, err
	}
	all, _ := ca.Revoked()
	for _, s := range serials {
		fmt.Fprintf(c.stdout, "revoked %s\n", fleetca.SerialHex(s))
	}
	fmt.Fprintf(c.stdout, "%s: %d revoked, valid for %d days; install it as the broker's crlfile and reload mosquitto (kill -HUP)\n",
		filepath.Join(r.CADir, fleetca.CRLFile), len(all), r.CRLDays)
	return exitOK, nil
}

// revokeTarget reads a serial or a certificate file; a certificate this
// CA did not sign is refused, since this CA's CRL cannot revoke it.
func revokeTarget(ca *fleetca.CA, w string) (*big.Int, error) {
	if b, err := os.ReadFile(w); err == nil {
		cert, err := fleetca.ParseCert(b)
		if err != nil {
			return nil, err
		}
		if !ca.Issued(cert) {
			return nil, errors.New("not signed by this CA: revoke it at the CA that signed it")
		}
		return cert.SerialNumber, nil
	}
	return fleetca.ParseSerial(w)
}

// openCA opens the fleet CA in dir on the command's clock, so what it
// signs and revokes is dated by c.now (a fixed time in tests).
func (c *cli) openCA(dir string) (*fleetca.CA, error) {
	ca, err := fleetca.Open(dir)
	if err != nil {
		return nil, err
	}
	ca.Now = c.now
	return ca, nil
}

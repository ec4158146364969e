package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/fleetca"
)

// certCmd rotates the boxes' certificates through the broker: each box
// makes its new key itself and sends only a CSR (fleet/certrotate.go).
type certCmd struct {
	Rotate  certRotateCmd  `cmd:"" help:"New key on each box, its CSR signed by the fleet CA (or written out with --csr-out), the certificate installed; the box reconnects with it, then the old certificate is added to the CRL. Needs --via."`
	Install certInstallCmd `cmd:"" help:"Deliver certificates an external CA signed (DEVICE.pem in --cert-dir, for the CSRs cert rotate --csr-out wrote). Needs --via."`
}

type certRotateCmd struct {
	selection `embed:""`
	Device    string `placeholder:"D" help:"Only the box with this device id (the CN of its certificate)."`
	signFlags `embed:""`
	CADir     string `name:"ca-dir" placeholder:"DIR" help:"The fleet CA directory that signs the CSRs and keeps the CRL (see ca init)."`
	CSROut    string `name:"csr-out" placeholder:"DIR" help:"Instead of signing: write each box's CSR to DIR/DEVICE.csr for an external CA; deliver its answers with cert install."`
}

func (r *certRotateCmd) run(ctx context.Context, c *cli) (int, error) {
	if (r.CADir == "") == (r.CSROut == "") {
		return exitUsage, fmt.Errorf("%w: cert rotate needs either --ca-dir DIR (sign here) or --csr-out DIR (an external CA signs)", errUsage)
	}
	if c.via == "" {
		return exitUsage, fmt.Errorf("%w: cert rotate goes through the broker: give --via", errUsage)
	}
	if len(r.Host) > 0 {
		// One name list for many boxes would be wrong for all but one.
		return exitUsage, fmt.Errorf("%w: cert rotate takes each https name from the box's url in the inventory; --host is for ca sign", errUsage)
	}
	if r.Device != "" {
		if r.Group != "" {
			return exitUsage, fmt.Errorf("%w: give --group or --device, not both", errUsage)
		}
		name, err := c.boxOfDevice(r.Device)
		if err != nil {
			return exitFailed, err
		}
		r.Group = name // a box's name selects just that box
	}
	var ca *fleetca.CA
	if r.CADir != "" {
		var err error
		if ca, err = c.openCA(r.CADir); err != nil {
			return exitFailed, err
		}
	} else if err := os.MkdirAll(r.CSROut, 0o700); err != nil {
		return exitFailed, err
	}
	return withBoxes(ctx, c, r.selection, func(t transport, boxes []Box) (int, error) {
		m := t.(*mqttTransport)
		var rep replaced
		res := c.each(ctx, boxes, c.boxTimeout(3*time.Minute), func(ctx context.Context, b Box) (string, error) {
			csr, err := m.certCSR(ctx, b, r.Kind)
			if err != nil {
				return "", fmt.Errorf("csr: %w", err)
			}
			if r.CSROut != "" {
				f := filepath.Join(r.CSROut, csrName(b.DeviceID(), r.Kind))
				if err := atomicfile.WriteFile(f, []byte(csr), 0o644); err != nil {
					return "", err
				}
				return "csr written to " + f, nil
			}
			var hosts []string
			if r.Kind == fleet.CertKindHTTPS {
				u, err := url.Parse(b.URL)
				if err != nil || u.Hostname() == "" {
					return "", errors.New("an https certificate is for the host of the box's url, and the inventory has none")
				}
				hosts = []string{u.Hostname()}
			}
			cert, _, err := ca.Sign([]byte(csr), b.DeviceID(), r.profile(hosts))
			if err != nil {
				return "", fmt.Errorf("sign: %w", err)
			}
			return m.certInstall(ctx, b, r.Kind, string(cert), &rep)
		})
		return c.revokeOld(ca, "cert rotate", res, &rep)
	})
}

type certInstallCmd struct {
	selection `embed:""`
	Kind      string `enum:"fleet,https" default:"fleet" placeholder:"fleet|https" help:"Which certificate (default ${default})."`
	CertDir   string `name:"cert-dir" required:"" placeholder:"DIR" help:"Holds DEVICE.pem (DEVICE.https.pem for https) per box, the certificate and any intermediates."`
	CADir     string `name:"ca-dir" placeholder:"DIR" help:"Also add the replaced certificates to this CA's CRL."`
}

func (i *certInstallCmd) run(ctx context.Context, c *cli) (int, error) {
	if c.via == "" {
		return exitUsage, fmt.Errorf("%w: cert install goes through the broker: give --via", errUsage)
	}
	var ca *fleetca.CA
	if i.CADir != "" {
		var err error
		if ca, err = c.openCA(i.CADir); err != nil {
			return exitFailed, err
		}
	}
	return withBoxes(ctx, c, i.selection, func(t transport, boxes []Box) (int, error) {
		m := t.(*mqttTransport)
		var rep replaced
		res := c.each(ctx, boxes, c.boxTimeout(3*time.Minute), func(ctx context.Context, b Box) (string, error) {
			cert, err := os.ReadFile(filepath.Join(i.CertDir, certName(b.DeviceID(), i.Kind)))
			if err != nil {
				return "", err
			}
			return m.certInstall(ctx, b, i.Kind, string(cert), &rep)
		})
		return c.revokeOld(ca, "cert install", res, &rep)
	})
}

// boxOfDevice is the inventory name of the box with device id dev.
func (c *cli) boxOfDevice(dev string) (string, error) {
	if err := c.load(); err != nil {
		return "", err
	}
	for _, b := range c.inv.Boxes {
		if b.DeviceID() == dev {
			return b.Name, nil
		}
	}
	return "", fmt.Errorf("no box with device id %q in the inventory", dev)
}

// replaced collects, per box, the certificate a new one replaced.
type replaced struct {
	mu  sync.Mutex
	old map[string]string // box name → PEM
}

func (r *replaced) add(box, pem string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.old == nil {
		r.old = map[string]string{}
	}
	r.old[box] = pem
}

func (m *mqttTransport) certCSR(ctx context.Context, b Box, kind string) (string, error) {
	raw, err := m.call(ctx, b, fleet.Command{Op: fleet.OpCertCSR, Kind: kind})
	if err != nil {
		return "", err
	}
	var r fleet.CSRResult
	if err := json.Unmarshal(raw, &r); err != nil || r.CSR == "" {
		return "", fmt.Errorf("parse reply: no csr (%v)", err)
	}
	return r.CSR, nil
}

// certInstall delivers cert; the box answers once it is connected with
// it (or back on the old pair). The certificate it replaced goes to rep.
func (m *mqttTransport) certInstall(ctx context.Context, b Box, kind, cert string, rep *replaced) (string, error) {
	raw, err := m.call(ctx, b, fleet.Command{Op: fleet.OpCertInstall, Kind: kind, Cert: cert})
	if err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	var r fleet.InstallResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", fmt.Errorf("parse reply: %w", err)
	}
	rep.add(b.Name, r.OldCert)
	return "new serial " + r.Serial, nil
}

// revokeOld adds every replaced certificate this CA signed to its CRL in
// one write, fills in the per-box messages and prints the table. Without
// a CA (the hand-off) it names the serials to revoke at the external CA.
func (c *cli) revokeOld(ca *fleetca.CA, what string, res []outcome, rep *replaced) (int, error) {
	type old struct {
		i    int
		cert *x509.Certificate
	}
	var (
		olds    []old
		serials []*big.Int
	)
	for i, r := range res {
		oldPEM, found := rep.old[r.Box]
		if !found || !r.OK {
			continue
		}
		cert, err := fleetca.ParseCert([]byte(oldPEM))
		if err != nil {
			res[i].Msg += "; the box sent no old certificate"
			continue
		}
		olds = append(olds, old{i, cert})
		if ca != nil && ca.Issued(cert) {
			serials = append(serials, cert.SerialNumber)
		}
	}
	var crlErr error
	if ca != nil && len(serials) > 0 {
		crlErr = ca.Revoke(serials, fleetca.DefaultCRLDays)
	}
	for _, o := range olds {
		s := fleetca.SerialHex(o.cert.SerialNumber)
		switch {
		case ca == nil:
			res[o.i].Msg += "; old serial " + s + ": revoke it at your CA"
		case !ca.Issued(o.cert):
			res[o.i].Msg += "; old serial " + s + " was not signed by this CA: revoke it where it was"
		case crlErr != nil:
			res[o.i].Msg += "; old serial " + s + " NOT revoked (CRL write failed)"
		default:
			res[o.i].Msg += "; old serial " + s + " revoked"
		}
	}
	code := c.report(what, res)
	if crlErr != nil {
		return exitFailed, fmt.Errorf("new certificates are in place, but the CRL was not written (run mohctl ca revoke for the old serials): %w", crlErr)
	}
	if len(serials) > 0 {
		fmt.Fprintf(c.stderr, "mohctl: %s updated: install it as the broker's crlfile and reload mosquitto (kill -HUP)\n", filepath.Join(ca.Dir, fleetca.CRLFile))
	}
	return code, nil
}

package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/fleetca"
)

// sendOne is one command to one box through the real broker.
func sendOne(t *testing.T, cl *Client, dev string, cmd Command, d time.Duration) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	rs, err := cl.Send(ctx, Target{Device: dev}, cmd, []string{dev})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := rs[dev]
	if !ok {
		t.Fatalf("%s: no reply to %s", dev, cmd.Op)
	}
	return r
}

func csrOf(t *testing.T, cl *Client, dev string) []byte {
	t.Helper()
	r := sendOne(t, cl, dev, Command{Op: OpCertCSR}, 10*time.Second)
	if !r.OK {
		t.Fatalf("cert_csr: %v", r.Error)
	}
	var res CSRResult
	if err := json.Unmarshal(r.Result, &res); err != nil || res.Kind != CertKindFleet {
		t.Fatalf("cert_csr result %s: %v", r.Result, err)
	}
	return []byte(res.CSR)
}

func mode(t *testing.T, file string) os.FileMode {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func gone(t *testing.T, file string) {
	t.Helper()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("%s still there (%v)", filepath.Base(file), err)
	}
}

// otherCA is a second CA the box trusts (its CA file holds both) but the
// broker does not: a certificate from it passes the box's own checks and
// is refused by the broker, like a certificate the broker revoked.
func otherCA(t *testing.T, e *env) (*fleetca.CA, string) {
	t.Helper()
	ca2, _, err := fleetca.Init(t.TempDir(), "other CA", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(e.ca.CAFile)
	b, _ := os.ReadFile(filepath.Join(ca2.Dir, fleetca.CertFile))
	both := filepath.Join(t.TempDir(), "both.pem")
	if err := os.WriteFile(both, append(append(a, '\n'), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca2, both
}

func TestCertRotationReconnectsWithTheNewPair(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	a := e.startAgent(t, "box-1", newFakeOps(), func(o *AgentOptions) { o.CertDir = dir; o.CertConfirmTimeout = 10 * time.Second })
	first := fleettest.LeafOf(t, a.o.CertFile)
	cl := e.operator(t)

	// Without a CSR first there is no key to install a certificate for.
	if r := sendOne(t, cl, "box-1", Command{Op: OpCertInstall, Cert: "x"}, 10*time.Second); r.OK || r.Error.Code != CodeBadRequest {
		t.Fatalf("install before csr: %+v", r)
	}

	csr := csrOf(t, cl, "box-1")
	if m := mode(t, pendingKeyFile(dir, CertKindFleet)); m != 0o600 {
		t.Errorf("pending key mode %o, want 600", m)
	}
	// Asking again reuses the waiting key: a CSR already handed to a
	// CA stays good.
	again := csrOf(t, cl, "box-1")
	c1, _ := fleetca.ParseCSR(csr)
	c2, _ := fleetca.ParseCSR(again)
	if string(c1.RawSubjectPublicKeyInfo) != string(c2.RawSubjectPublicKeyInfo) {
		t.Error("a second cert_csr made another key")
	}
	if c1.Subject.CommonName != "box-1" {
		t.Errorf("csr CN %q", c1.Subject.CommonName)
	}

	cert, err := e.ca.SignCSR(csr, "box-1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := sendOne(t, cl, "box-1", Command{Op: OpCertInstall, Cert: string(cert)}, 30*time.Second)
	if !r.OK {
		t.Fatalf("cert_install: %v", r.Error)
	}
	t.Logf("install to reconnected with the new pair: %v", time.Since(start))
	var res InstallResult
	json.Unmarshal(r.Result, &res)
	newLeaf := fleettest.LeafOf(t, PairFile(dir, CertKindFleet))
	if res.Serial != fleetca.SerialHex(newLeaf.SerialNumber) || res.OldSerial != fleetca.SerialHex(first.SerialNumber) {
		t.Errorf("result %+v; new %s, first %s", res, newLeaf.SerialNumber, first.SerialNumber)
	}
	if old, err := fleetca.ParseCert([]byte(res.OldCert)); err != nil || old.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("old cert in reply: %v", err)
	}
	if m := mode(t, PairFile(dir, CertKindFleet)); m != 0o600 {
		t.Errorf("pair mode %o, want 600", m)
	}
	gone(t, oldPairFile(dir, CertKindFleet))
	gone(t, pendingKeyFile(dir, CertKindFleet))
	a.rot.mu.Lock()
	up, gen, serial := a.rot.upGen, a.rot.gen, a.rot.active.Leaf.SerialNumber
	a.rot.mu.Unlock()
	if up != gen || serial.Cmp(newLeaf.SerialNumber) != 0 {
		t.Errorf("connection generation %d of %d, serial %s", up, gen, serial)
	}
	// The link works after the switch.
	if r := sendOne(t, cl, "box-1", Command{Op: OpStatus}, 10*time.Second); !r.OK {
		t.Errorf("status after rotation: %v", r.Error)
	}
}

func TestCertRotationFallsBackWhenTheBrokerRefuses(t *testing.T) {
	e := newEnv(t, nil)
	ca2, both := otherCA(t, e)
	dir := t.TempDir()
	a := e.startAgent(t, "box-1", newFakeOps(), func(o *AgentOptions) {
		o.CertDir, o.CAFile, o.CertConfirmTimeout = dir, both, 3*time.Second
	})
	first := fleettest.LeafOf(t, a.o.CertFile)
	cl := e.operator(t)
	cert, _, err := ca2.Sign(csrOf(t, cl, "box-1"), "box-1", fleetca.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	r := sendOne(t, cl, "box-1", Command{Op: OpCertInstall, Cert: string(cert)}, 30*time.Second)
	if r.OK || r.Error.Code != CodeCertRefused || !strings.Contains(r.Error.Message, "back on the old pair (reconnected)") {
		t.Fatalf("install of a certificate the broker refuses: %+v %v", r, r.Error)
	}
	if !a.Connected() {
		t.Error("not connected after falling back")
	}
	if got := fleettest.LeafOf(t, PairFile(dir, CertKindFleet)); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("pair on disk has serial %s, want the old %s", got.SerialNumber, first.SerialNumber)
	}
	gone(t, oldPairFile(dir, CertKindFleet))
	if r := sendOne(t, cl, "box-1", Command{Op: OpStatus}, 10*time.Second); !r.OK {
		t.Errorf("status after fallback: %v", r.Error)
	}
}

// pairPEM makes a key and a certificate for it from ca, in one PEM.
func pairPEM(t *testing.T, ca *fleetca.CA, cn string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	cert, _, err := ca.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), cn, fleetca.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	return append(cert, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})...)
}

func filePair(t *testing.T, e *env, cn string) []byte {
	c, k := e.certs(t, cn)
	cb, _ := os.ReadFile(c)
	kb, _ := os.ReadFile(k)
	return append(cb, kb...)
}

// An install cut short (power cut after the new pair was written, before
// it connected) is settled at the next start: a new pair that connects
// stays, one that does not is replaced by the kept old pair.
func TestCertRotationCutShortIsSettledAtStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		newWorks  bool
		wantFinal string // "new" or "old"
	}{
		{"new pair works", true, "new"},
		{"new pair refused", false, "old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			ca2, both := otherCA(t, e)
			dir := t.TempDir()
			oldPair := filePair(t, e, "box-1")
			newPair := filePair(t, e, "box-1")
			if !tc.newWorks {
				newPair = pairPEM(t, ca2, "box-1")
			}
			os.WriteFile(PairFile(dir, CertKindFleet), newPair, 0o600)
			os.WriteFile(oldPairFile(dir, CertKindFleet), oldPair, 0o600)
			a := e.startAgent(t, "box-1", newFakeOps(), func(o *AgentOptions) {
				o.CertDir, o.CAFile, o.CertConfirmTimeout = dir, both, 2*time.Second
			})
			waitFor(t, 10*time.Second, "old pair file settled", func() bool {
				_, err := os.Stat(oldPairFile(dir, CertKindFleet))
				return os.IsNotExist(err)
			})
			want := newPair
			if tc.wantFinal == "old" {
				want = oldPair
			}
			got, _ := os.ReadFile(PairFile(dir, CertKindFleet))
			if string(got) != string(want) {
				t.Errorf("pair on disk is not the %s one", tc.wantFinal)
			}
			waitFor(t, 10*time.Second, "connected", a.Connected)
		})
	}
}

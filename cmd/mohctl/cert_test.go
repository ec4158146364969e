package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/fleetca"
	"github.com/mohproject/moh/internal/testkit"
)

// runNow is runCLI with the real clock: certificates and the expiries of
// commands over the broker are checked by real boxes against theirs.
func runNow(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, now: time.Now, getenv: func(string) string { return "" }}
	code := c.run(context.Background(), args)
	return code, out.String(), errb.String()
}

// issue makes a key and has the CA sign it, as the walkthrough's openssl
// does: files cn.pem and cn.key in dir.
func issue(t *testing.T, ca *fleetca.CA, dir, cn string, server bool) (string, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
	p := fleetca.Profile{}
	if server {
		p = fleetca.Profile{Server: true, Hosts: []string{"127.0.0.1"}}
	}
	cert, _, err := ca.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), cn, p)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	cf, kf := filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
	os.WriteFile(cf, cert, 0o644)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return cf, kf
}

// certFleet is the operator's directory: the CA (made by mohctl ca init),
// a broker using its CRL, the operator's certificate and an inventory.
type certFleet struct {
	bin        string // the real mohd every box runs
	dir, caDir string
	ca         *fleetca.CA
	broker     *fleettest.Broker
	via        []string
}

func newCertFleet(t *testing.T, boxes ...string) *certFleet {
	t.Helper()
	bin := testkit.MustBuildMohd(t, realVersion)
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if code, out, errs := runNow(t, "ca", "init", caDir); code != 0 || !strings.Contains(out, "created a new CA") {
		t.Fatalf("ca init: %d %s %s", code, out, errs)
	}
	ca, err := fleetca.Open(caDir)
	if err != nil {
		t.Fatal(err)
	}
	bc, bk := issue(t, ca, dir, "broker", true)
	oc, ok := issue(t, ca, dir, "operator", false)
	groups := map[string][]string{}
	inv := `{"boxes":[`
	for i, b := range boxes {
		groups[b] = []string{"drill"}
		if i > 0 {
			inv += ","
		}
		inv += fmt.Sprintf(`{"name":%q,"groups":["drill"]}`, b)
	}
	inv += "]}"
	os.WriteFile(filepath.Join(dir, "inventory.json"), []byte(inv), 0o600)
	os.WriteFile(filepath.Join(dir, "acl"), []byte(fleettest.ACL(groups)), 0o644)
	// The broker fleet/README.md sets up: the operator's CA and its CRL.
	b := fleettest.MustBrokerFiles(t, dir, fleettest.BrokerFiles{CAFile: filepath.Join(caDir, fleetca.CertFile),
		CertFile: bc, KeyFile: bk, CRLFile: filepath.Join(caDir, fleetca.CRLFile), ACLFile: filepath.Join(dir, "acl")})
	return &certFleet{bin: bin, dir: dir, caDir: caDir, ca: ca, broker: b, via: []string{
		"--via", b.URL(), "--ca", filepath.Join(caDir, fleetca.CertFile), "--cert", oc, "--key", ok,
		"--inventory", filepath.Join(dir, "inventory.json")}}
}

func (f *certFleet) mohctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runNow(t, append(append([]string{}, f.via...), args...)...)
}

// box starts a real mohd for id with its first certificate (cert 1); kill
// ends it with SIGKILL, as a power cut would.
func (f *certFleet) box(t *testing.T, id string, data string, extra ...string) (kill func(), cert1, addr string) {
	t.Helper()
	cf, kf := filepath.Join(f.dir, id+".pem"), filepath.Join(f.dir, id+".key")
	if _, err := os.Stat(cf); err != nil {
		cf, kf = issue(t, f.ca, f.dir, id, false)
	}
	addr = testkit.FreeAddr(t)
	p := testkit.Start(t, exec.Command(f.bin, append([]string{"run", "--data", data, "--listen", addr, "--output", "null",
		"--mqtt-broker", f.broker.URL(), "--mqtt-ca", filepath.Join(f.caDir, fleetca.CertFile),
		"--mqtt-cert", cf, "--mqtt-key", kf, "--device-id", id, "--groups", "drill"}, extra...)...))
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", id, p.Log.String())
		}
	})
	return p.Kill, cf, addr
}

// online waits until the box's retained status says online with a time
// after since, and returns its volume.
func (f *certFleet) online(t *testing.T, id string, since time.Time, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, out, _ := f.mohctl(t, "status", "-g", id, "-o", "json")
		var rows []struct {
			Name     string    `json:"name"`
			State    string    `json:"state"`
			LastSeen time.Time `json:"last_seen"`
			Error    string    `json:"error"`
		}
		json.Unmarshal([]byte(out), &rows)
		if code != 2 && len(rows) == 1 && rows[0].Error == "" && rows[0].LastSeen.After(since) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not online since %s within %v: %d %s", id, since.Format(time.RFC3339Nano), d, code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dialWith connects a client presenting certFile/keyFile (a probe, not a
// box: its own client id, so it does not take over the box's session).
func (f *certFleet) dialWith(certFile, keyFile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := fleet.Dial(ctx, fleet.ClientOptions{BrokerURL: f.broker.URL(), CAFile: filepath.Join(f.caDir, fleetca.CertFile),
		CertFile: certFile, KeyFile: keyFile, ClientID: "probe-" + fleet.NewRequestID()})
	if err != nil {
		return err
	}
	cl.Close()
	return nil
}

func serialOf(t *testing.T, file string) string {
	t.Helper()
	return fleetca.SerialHex(fleettest.LeafOf(t, file).SerialNumber)
}

// The Heartbleed drill against a real mosquitto with a CRL and a real
// mohd: the box makes a new key, mohctl signs its CSR, the box
// reconnects with cert 2 and stays connected; cert 1 is in the CRL and
// the broker refuses it once it has reloaded the CRL (SIGHUP).
func TestCertRotateRealBrokerCRL(t *testing.T) {
	f := newCertFleet(t, "paris-1")
	data := t.TempDir()
	start := time.Now()
	_, cert1, _ := f.box(t, "paris-1", data)
	key1 := strings.TrimSuffix(cert1, ".pem") + ".key"
	f.online(t, "paris-1", start, 20*time.Second)
	serial1 := serialOf(t, cert1)

	rotated := time.Now()
	code, out, errs := f.mohctl(t, "cert", "rotate", "--ca-dir", f.caDir, "--device", "paris-1")
	if code != 0 {
		t.Fatalf("cert rotate: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("cert rotate took %v:\n%s%s", time.Since(rotated), out, errs)
	pair := filepath.Join(data, "fleet", fleet.CertKindFleet+".pem")
	serial2 := serialOf(t, pair)
	if serial2 == serial1 || !strings.Contains(out, "new serial "+serial2) || !strings.Contains(out, "old serial "+serial1+" revoked") {
		t.Errorf("rotate output does not name new %s and revoked %s:\n%s", serial2, serial1, out)
	}
	if st, _ := os.Stat(pair); st.Mode().Perm() != 0o600 {
		t.Errorf("rotated pair mode %o", st.Mode().Perm())
	}
	revoked, _ := f.ca.Revoked()
	if len(revoked) != 1 || fleetca.SerialHex(revoked[0]) != serial1 {
		t.Errorf("CRL lists %v, want only %s", revoked, serial1)
	}

	// Before the reload the broker still has the old CRL in memory.
	if err := f.dialWith(cert1, key1); err != nil {
		t.Errorf("cert 1 refused before the CRL was reloaded: %v (then SIGHUP is not what makes it work)", err)
	}
	// A session opened with cert 1 before the reload (an attacker's)...
	tc, err := fleet.TLSConfig(filepath.Join(f.caDir, fleetca.CertFile), cert1, key1)
	if err != nil {
		t.Fatal(err)
	}
	held := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(f.broker.URL()).SetClientID("held-" + fleet.NewRequestID()).
		SetTLSConfig(tc).SetAutoReconnect(false))
	if tok := held.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("held session: %v", tok.Error())
	}
	defer held.Disconnect(0)
	if err := f.broker.HUP(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "cert 1 refused after SIGHUP", func() bool { return f.dialWith(cert1, key1) != nil })
	// ...survives the reload (so the docs say: restart the broker when
	// an attacker may hold one), and not the restart below.
	if tok := held.Subscribe("moh/paris-1/cmd", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil || !held.IsConnectionOpen() {
		t.Errorf("the session opened with cert 1 did not survive SIGHUP (%v): the docs are wrong", tok.Error())
	}
	if err := f.dialWith(pair, pair); err != nil {
		t.Errorf("cert 2 refused: %v", err)
	}

	// The box is on cert 2 and stays connected: a command works and its
	// retained status updates.
	if code, out, errs := f.mohctl(t, "volume", "30", "-g", "paris-1"); code != 0 {
		t.Fatalf("volume after rotation: %d %s %s", code, out, errs)
	}
	// A broker restart makes every box reconnect: this one can only
	// come back with cert 2, since cert 1 is now refused.
	f.broker.Stop()
	restarted := time.Now()
	if err := f.broker.Start(); err != nil {
		t.Fatal(err)
	}
	f.online(t, "paris-1", restarted, 30*time.Second)
	if held.IsConnectionOpen() {
		t.Error("the session opened with cert 1 survived a broker restart")
	}
	if code, out, errs := f.mohctl(t, "volume", "40", "-g", "paris-1"); code != 0 {
		t.Fatalf("volume after broker restart: %d %s %s", code, out, errs)
	}
	for _, leftover := range []string{"fleet.old.pem", "fleet.key.new"} {
		if _, err := os.Stat(filepath.Join(data, "fleet", leftover)); !os.IsNotExist(err) {
			t.Errorf("%s left behind", leftover)
		}
	}
}

// The external-CA hand-off, with mohd killed (-9) between making its key
// and getting its certificate: it comes back on the old pair, its waiting
// key survives, and the certificate signed later installs.
func TestCertRotateHandOffSurvivesKill(t *testing.T) {
	f := newCertFleet(t, "lyon-1")
	data := t.TempDir()
	start := time.Now()
	kill, cert1, _ := f.box(t, "lyon-1", data)
	f.online(t, "lyon-1", start, 20*time.Second)

	csrDir := filepath.Join(f.dir, "csrs")
	if code, out, errs := f.mohctl(t, "cert", "rotate", "--csr-out", csrDir, "-g", "lyon-1"); code != 0 || !strings.Contains(out, "csr written") {
		t.Fatalf("cert rotate --csr-out: %d %s %s", code, out, errs)
	}
	kill()
	restarted := time.Now()
	f.box(t, "lyon-1", data)
	f.online(t, "lyon-1", restarted, 20*time.Second)
	if code, out, errs := f.mohctl(t, "volume", "20", "-g", "lyon-1"); code != 0 {
		t.Fatalf("box not working on its old pair after kill -9: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(data, "fleet", "fleet.pem")); !os.IsNotExist(err) {
		t.Errorf("a rotated pair exists before any certificate was installed (%v)", err)
	}

	// A certificate for another key (here: the box's current one) is
	// refused by the box, and mohctl fails.
	wrongDir := filepath.Join(f.dir, "wrong")
	os.MkdirAll(wrongDir, 0o700)
	cb, _ := os.ReadFile(cert1)
	os.WriteFile(filepath.Join(wrongDir, "lyon-1.pem"), cb, 0o644)
	if code, out, _ := f.mohctl(t, "cert", "install", "--cert-dir", wrongDir, "-g", "lyon-1"); code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "not for the key this box made") {
		t.Errorf("install of a certificate for another key: exit %d\n%s", code, out)
	}

	// A CSR whose CN is another device is refused, and nothing written.
	csr := filepath.Join(csrDir, "lyon-1.csr")
	wrong := filepath.Join(csrDir, "paris-9.csr")
	b, _ := os.ReadFile(csr)
	os.WriteFile(wrong, b, 0o644)
	if code, out, _ := runNow(t, "ca", "sign", "--ca-dir", f.caDir, wrong); code != 1 || !strings.Contains(out, "does not match") {
		t.Errorf("ca sign of lyon-1's CSR as paris-9: exit %d, %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(csrDir, "paris-9.pem")); !os.IsNotExist(err) {
		t.Error("a certificate was written for the mismatched CSR")
	}
	os.Remove(wrong)

	if code, out, errs := runNow(t, "ca", "sign", "--ca-dir", f.caDir, csr); code != 0 {
		t.Fatalf("ca sign: %d %s %s", code, out, errs)
	}
	code, out, errs := f.mohctl(t, "cert", "install", "--cert-dir", csrDir, "--ca-dir", f.caDir, "-g", "lyon-1")
	if code != 0 {
		t.Fatalf("cert install: %d %s %s", code, out, errs)
	}
	serial2 := serialOf(t, filepath.Join(data, "fleet", "fleet.pem"))
	if serial2 != serialOf(t, filepath.Join(csrDir, "lyon-1.pem")) || !strings.Contains(out, "old serial "+serialOf(t, cert1)+" revoked") {
		t.Errorf("install output: %s", out)
	}
}

// The box's HTTPS certificate rotates the same way and is served from
// the next handshake, without a restart: the inventory URL's host is the
// name it is issued for.
func TestCertRotateHTTPSWithoutRestart(t *testing.T) {
	f := newCertFleet(t, "nice-1")
	data := t.TempDir()
	start := time.Now()
	_, _, addr := f.box(t, "nice-1", data, "--tls", "auto")
	os.WriteFile(filepath.Join(f.dir, "inventory.json"),
		[]byte(`{"boxes":[{"name":"nice-1","url":"https://`+addr+`","groups":["drill"]}]}`), 0o600)
	f.online(t, "nice-1", start, 20*time.Second)
	served := func(verify bool) (*x509.Certificate, error) {
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(filepath.Join(f.caDir, fleetca.CertFile))
		pool.AppendCertsFromPEM(b)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, InsecureSkipVerify: !verify})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	before, err := served(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := served(true); err == nil {
		t.Fatal("the self-signed certificate verified against the fleet CA")
	}
	code, out, errs := f.mohctl(t, "cert", "rotate", "--kind", "https", "--ca-dir", f.caDir, "-g", "nice-1")
	if code != 0 || !strings.Contains(out, "not signed by this CA") {
		t.Fatalf("cert rotate --kind https: %d\n%s%s", code, out, errs)
	}
	after, err := served(true)
	if err != nil {
		t.Fatalf("new https certificate does not verify for %s: %v", addr, err)
	}
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || after.Subject.CommonName != "nice-1" {
		t.Errorf("served %s CN=%s after rotation", after.SerialNumber, after.Subject.CommonName)
	}
	if !strings.Contains(out, "new serial "+fleetca.SerialHex(after.SerialNumber)) {
		t.Errorf("output does not name the served serial:\n%s", out)
	}
}

func TestCertAndCAMisuse(t *testing.T) {
	for _, args := range [][]string{{"cert", "rotate", "--help"}, {"ca", "sign", "--help"}, {"help", "ca", "revoke"}} {
		if code, out, errOut := runNow(t, args...); code != exitOK || !strings.Contains(out, "Usage: mohctl") || errOut != "" {
			t.Errorf("%v: exit %d, %q %q", args, code, out, errOut)
		}
	}
	via := []string{"--via", "mqtts://broker.invalid:8883", "--inventory", "/nonexistent/inventory.json"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(via, "cert", "rotate"), "either --ca-dir DIR"},
		{append(via, "cert", "rotate", "--ca-dir", "a", "--csr-out", "b"), "either --ca-dir DIR"},
		{[]string{"cert", "rotate", "--ca-dir", "a"}, "give --via"},
		{append(via, "cert", "rotate", "--ca-dir", "a", "--host", "x"), "--host is for ca sign"},
		{append(via, "cert", "rotate", "--ca-dir", "a", "--kind", "ssh"), "--kind"},
		{append(via, "cert", "rotate", "--ca-dir", "a", "--device", "d", "-g", "g"), "not both"},
		{[]string{"cert", "install"}, "--cert-dir"},
		{[]string{"ca", "sign", "x.csr"}, "--ca-dir"},
		{[]string{"ca", "sign", "--ca-dir", "d", "--device", "a", "x.csr", "y.csr"}, "not 2"},
		{[]string{"ca", "sign", "--ca-dir", "d", "--kind", "https", "x.https.csr"}, "needs --host"},
		{[]string{"ca", "init"}, "Usage: mohctl ca init"},
	} {
		code, out, errOut := runNow(t, tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

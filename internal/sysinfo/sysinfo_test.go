package sysinfo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
)

func TestCertExpiryOfARealCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	cert, _ := ca.MustIssue(t, "box1", false)
	want := fleettest.LeafOf(t, cert)
	now := time.Now()
	r := New(Options{Certs: map[string]string{"fleet": cert, "https": filepath.Join(dir, "missing.pem"), "off": ""},
		Adjtimex: func() (bool, error) { return false, nil }, Now: func() time.Time { return now }})
	s := r.Read()
	if len(s.Certs) != 2 || s.Certs[0].Name != "fleet" || !s.Certs[0].NotAfter.Equal(want.NotAfter) {
		t.Fatalf("certs: %+v (want fleet expiring %v)", s.Certs, want.NotAfter)
	}
	if s.Certs[1].Name != "https" || s.Certs[1].Error == "" || !s.Certs[1].NotAfter.IsZero() {
		t.Errorf("a missing certificate: %+v", s.Certs[1])
	}
	// Read again within CertEvery: no disk read, so a removed file
	// still shows its last expiry; after it, the error.
	os.Remove(cert)
	if s := r.Read(); s.Certs[0].Error != "" {
		t.Errorf("certificate read again before CertEvery: %+v", s.Certs[0])
	}
	now = now.Add(11 * time.Minute)
	if s := r.Read(); s.Certs[0].Error == "" {
		t.Errorf("removed certificate not noticed after CertEvery: %+v", s.Certs[0])
	}
	key := filepath.Join(dir, "key.pem")
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600)
	if _, err := CertExpiry(key); err == nil {
		t.Error("a key file passed as a certificate")
	}
}

// A certificate made after the first read (mohd's own self-signed one is
// written at start) shows within certRetry, not after CertEvery.
func TestCertAppearingLaterIsSeenSoon(t *testing.T) {
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	path := filepath.Join(dir, "later.pem")
	now := time.Now()
	r := New(Options{Certs: map[string]string{"https": path},
		Adjtimex: func() (bool, error) { return false, nil }, Now: func() time.Time { return now }})
	if s := r.Read(); s.Certs[0].Error == "" {
		t.Fatalf("missing certificate read without error: %+v", s.Certs[0])
	}
	cert, _ := ca.MustIssue(t, "box1", false)
	if err := os.Rename(cert, path); err != nil {
		t.Fatal(err)
	}
	now = now.Add(certRetry)
	if s := r.Read(); s.Certs[0].Error != "" || s.Certs[0].NotAfter.IsZero() {
		t.Errorf("certificate made after the first read not seen after %v: %+v", certRetry, s.Certs[0])
	}
}

func TestClockSyncedFromTheKernel(t *testing.T) {
	ok, err := kernelClockSynced()
	if err != nil {
		t.Fatalf("adjtimex: %v", err)
	}
	t.Logf("this machine's clock synchronised: %v", ok)
	s := New(Options{}).Read()
	if s.ClockSynced == nil || *s.ClockSynced != ok {
		t.Errorf("Read: %v, kernel: %v", s.ClockSynced, ok)
	}
	s = New(Options{Adjtimex: func() (bool, error) { return false, errors.New("no") }}).Read()
	if s.ClockSynced != nil {
		t.Error("an unreadable clock state reported as a value")
	}
	raw, _ := json.Marshal(New(Options{Adjtimex: func() (bool, error) { return false, nil }}).Read())
	if !strings.Contains(string(raw), `"clock_synced":false`) {
		t.Errorf("an unsynchronised clock must be said, not left out: %s", raw)
	}
}

// TestWrittenBytesGrowWithWrites writes and syncs 8 MiB in a temp dir on
// this machine's real block device and sees the kernel's count grow by
// at least that.
func TestWrittenBytesGrowWithWrites(t *testing.T) {
	dir := t.TempDir()
	dev, before, err := WrittenBytes("/sys", dir)
	if errors.Is(err, errNoBlockDevice) {
		t.Skipf("%s has no block device here (tmpfs or overlay)", dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "wear"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for range 8 {
		f.Write(buf)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, after, err := WrittenBytes("/sys", dir)
	if err != nil {
		t.Fatal(err)
	}
	if after < before+8<<20 {
		t.Errorf("device %s: %d bytes written before, %d after 8 MiB synced", dev, before, after)
	}
	s := New(Options{DataDir: dir, Adjtimex: func() (bool, error) { return true, nil }}).Read()
	if s.DataWrittenBytes == nil || *s.DataWrittenBytes < after || s.DataDevice != dev {
		t.Errorf("Read: %v %q", s.DataWrittenBytes, s.DataDevice)
	}
}

func TestWrittenBytesFromSysfs(t *testing.T) {
	dir := t.TempDir()
	dev, _, err := WrittenBytes("/sys", dir)
	if errors.Is(err, errNoBlockDevice) {
		t.Skip("no block device")
	}
	// The same device in a fake sysfs, with a known count.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev", "block", dev), 0o755)
	stat := "    1000        0    20000      500     3000        0   123456     9000        0     8000     9500\n"
	os.WriteFile(filepath.Join(root, "dev", "block", dev, "stat"), []byte(stat), 0o644)
	if _, n, err := WrittenBytes(root, dir); err != nil || n != 123456*512 {
		t.Errorf("fake sysfs: %d %v", n, err)
	}
	os.WriteFile(filepath.Join(root, "dev", "block", dev, "stat"), []byte("1 2 3\n"), 0o644)
	if _, _, err := WrittenBytes(root, dir); err == nil {
		t.Error("a short stat file accepted")
	}
}

// A rotated certificate (a new file named, or the same file rewritten)
// is reported at the next read, not after CertEvery: an operator checking
// the rotation must see the new expiry.
func TestRotatedCertSeenAtOnce(t *testing.T) {
	dir := t.TempDir()
	caExp := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second).UTC()
	leafExp := caExp.Add(367 * 24 * time.Hour)
	first, leaf := selfSigned(t, dir, "old.pem", caExp), selfSigned(t, dir, "new.pem", leafExp)
	now := time.Now()
	current := first
	r := New(Options{CertFiles: func() map[string]string { return map[string]string{"fleet": current} },
		Adjtimex: func() (bool, error) { return false, nil }, Now: func() time.Time { return now }})
	if got := r.Read().Certs[0].NotAfter; !got.Equal(caExp) {
		t.Fatalf("first read: %v, want %v", got, caExp)
	}
	current = leaf // the agent switched to the rotated pair
	if got := r.Read().Certs[0].NotAfter; !got.Equal(leafExp) {
		t.Errorf("after switching files: %v, want the new %v", got, leafExp)
	}
	// The same path rewritten by the next rotation (rename over it).
	stable := filepath.Join(dir, "fleet.pem")
	data, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stable, data, 0o644); err != nil {
		t.Fatal(err)
	}
	current = stable
	if got := r.Read().Certs[0].NotAfter; !got.Equal(caExp) {
		t.Fatalf("stable path: %v, want %v", got, caExp)
	}
	data, err = os.ReadFile(leaf)
	if err != nil {
		t.Fatal(err)
	}
	tmp := stable + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, now.Add(time.Minute), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, stable); err != nil {
		t.Fatal(err)
	}
	if got := r.Read().Certs[0].NotAfter; !got.Equal(leafExp) {
		t.Errorf("after the file was rewritten: %v, want the new %v", got, leafExp)
	}
}

// selfSigned writes a self-signed certificate expiring at notAfter.
func selfSigned(t *testing.T, dir, name string, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

package webui

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A rotated certificate is served from the next handshake, while a
// connection opened before keeps going; a bad pair changes nothing.
func TestReloadTLSWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	p := envOpts{}.testPlayer(t)
	s, err := New(Options{Player: p, DataDir: dir, Logger: testLogger(t), TLSAuto: true})
	if err != nil {
		t.Fatal(err)
	}
	ln := serveLoopback(t, s)
	dial := func() (*tls.Conn, []byte) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return c, c.ConnectionState().PeerCertificates[0].Raw
	}
	open, first := dial()
	defer open.Close()
	cur, err := s.TLSCertificate()
	if err != nil || string(cur.Raw) != string(first) {
		t.Fatalf("TLSCertificate is not the served one: %v", err)
	}

	// Another pair: EnsureSelfSigned in another dir makes one.
	other := t.TempDir()
	cf, kf, err := EnsureSelfSigned(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(other, "bad.pem")
	os.WriteFile(bad, []byte("not a pair"), 0o600)
	if err := s.ReloadTLS(bad, bad); err == nil {
		t.Fatal("a bad pair was accepted")
	}
	if c, got := dial(); string(got) != string(first) {
		t.Error("a refused reload changed the served certificate")
	} else {
		c.Close()
	}
	if err := s.ReloadTLS(cf, kf); err != nil {
		t.Fatal(err)
	}
	c, got := dial()
	c.Close()
	want, _ := s.TLSCertificate()
	if string(got) == string(first) || string(got) != string(want.Raw) {
		t.Error("the new certificate is not served")
	}
	// The connection from before the reload still works.
	if _, err := open.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Errorf("old connection: %v", err)
	}
	buf := make([]byte, 12)
	open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := open.Read(buf); err != nil || string(buf[:n]) != "HTTP/1.1 200" && string(buf[:n]) != "HTTP/1.1 503" {
		t.Errorf("old connection answered %q, %v", buf[:n], err)
	}

	plain, err := New(Options{Player: p, DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.ReloadTLS(cf, kf); err == nil {
		t.Error("a plain HTTP server took a certificate")
	}
}

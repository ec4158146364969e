package fleet

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A box trusts the fleet CA (its --mqtt-ca) for add_track downloads, beside
// the system roots: a company file server that CA signed must work, and a
// server signed by nobody the box knows must still be refused.
func TestAddTrackTrustsFleetCA(t *testing.T) {
	body := []byte("ID3 a track on the company file server")
	sum := sha256.Sum256(body)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })

	e := newEnv(t, testGroups)
	certFile, keyFile := e.ca.MustIssue(t, "files", true) // localhost, 127.0.0.1
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	company := httptest.NewUnstartedServer(handler)
	company.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	company.StartTLS()
	defer company.Close()
	stranger := httptest.NewUnstartedServer(handler)      // httptest's own CA
	stranger.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	stranger.StartTLS()
	defer stranger.Close()

	ops := newFakeOps()
	// No HTTPClient: the default one mohd gets, built from CAFile.
	e.startAgent(t, "box-a", ops, nil)
	op := e.operator(t)
	hash := hex.EncodeToString(sum[:])

	r := send(t, op, Target{Device: "box-a"}, Command{Op: OpAddTrack, URL: company.URL + "/hold.mp3", SHA256: hash}, "box-a")["box-a"]
	if !r.OK {
		t.Fatalf("download from a server the fleet CA signed: %+v", r.Error)
	}
	r = send(t, op, Target{Device: "box-a"}, Command{Op: OpAddTrack, URL: stranger.URL + "/hold.mp3", SHA256: hash}, "box-a")["box-a"]
	if r.OK || r.Error == nil || r.Error.Code != CodeDownload || !strings.Contains(r.Error.Message, "certificate") {
		t.Fatalf("download from a server no trusted CA signed: %+v", r)
	}
}

func TestFetchClientCAFile(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := fetchClient(e.ca.CAFile); err != nil {
		t.Fatalf("fleet CA: %v", err)
	}
	if _, err := fetchClient(""); err != nil {
		t.Fatalf("system roots only: %v", err)
	}
	if _, err := fetchClient(e.ca.Dir + "/missing.pem"); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
	_, key := e.ca.MustIssue(t, "x", false)
	if _, err := fetchClient(key); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a key as CA file: %v", err)
	}
}

package webui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/sysupdate"
)

// sysRunner is RAUC for the API's tests (the real one is driven in
// cmd/mohd's update tests): slots A (booted) and B; Info refuses what
// the test says.
type sysRunner struct {
	infoErr error
	compat  string
	hold    chan struct{}
}

func (r *sysRunner) Info(ctx context.Context, bundle string) (sysupdate.BundleInfo, error) {
	c := r.compat
	if c == "" {
		c = "moh-appliance-x86_64"
	}
	return sysupdate.BundleInfo{Compatible: c, Version: "2.0.0"}, r.infoErr
}

func (r *sysRunner) Install(ctx context.Context, bundle string, progress func(int, string)) error {
	if r.hold != nil {
		<-r.hold
	}
	progress(100, "done")
	return nil
}

func (r *sysRunner) Status(ctx context.Context) (sysupdate.RaucStatus, error) {
	return sysupdate.RaucStatus{Compatible: "moh-appliance-x86_64", Booted: "A", Primary: "rootfs.0", Slots: []sysupdate.Slot{
		{Name: "rootfs.0", Bootname: "A", Version: "1.0", State: "booted", Booted: true, Primary: true, BootStatus: "good", Good: true},
		{Name: "rootfs.1", Bootname: "B", State: "inactive", BootStatus: "good", Good: true},
	}}, nil
}

func (r *sysRunner) Mark(ctx context.Context, good bool) error { return nil }

func bundleForm(t *testing.T, fields map[string]string, bundle []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("bundle", "moh.raucb")
	fw.Write(bundle)
	mw.Close()
	return &b, mw.FormDataContentType()
}

func TestSystemAPI(t *testing.T) {
	free := uint64(1 << 40)
	r := &sysRunner{}
	m, err := sysupdate.New(sysupdate.Options{Runner: r, Dir: t.TempDir(), Version: "1.0",
		FreeBytes: func(string) (uint64, error) { return free, nil }})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{opts: func(o *Options) { o.Update = m }})
	admin, _, err := CreateToken(e.dir, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	read, _, _ := CreateToken(e.dir, "read", "")
	post := func(body *bytes.Buffer, ctype, query string, tok string) (*http.Response, []byte) {
		h := bearer(tok)
		h["Content-Type"] = ctype
		return e.do(nil, "POST", "/api/v1/system/update"+query, body, h)
	}

	resp, body := e.do(nil, "GET", "/api/v1/system", nil, bearer(read))
	var doc systemDoc
	if json.Unmarshal(body, &doc); resp.StatusCode != 200 || doc.Update != "rauc" || !doc.RaucAvailable || len(doc.Slots) != 2 || doc.State.Phase != "idle" {
		t.Fatalf("GET /system: %d %s", resp.StatusCode, body)
	}

	bundle := []byte("a bundle")
	sum := sha256.Sum256(bundle)
	good := hex.EncodeToString(sum[:])

	b, ct := bundleForm(t, nil, bundle)
	resp, body = post(b, ct, "", read)
	wantError(t, resp, body, 403, "forbidden")

	b, ct = bundleForm(t, map[string]string{"sha256": strings.Repeat("1", 64)}, bundle)
	resp, body = post(b, ct, "", admin)
	wantError(t, resp, body, 422, "sha256_mismatch")

	r.infoErr = errors.New("rauc info: signature verification failed: Verify error: self-signed certificate")
	b, ct = bundleForm(t, nil, bundle)
	resp, body = post(b, ct, "", admin)
	wantError(t, resp, body, 422, "bundle_refused")
	if !strings.Contains(string(body), "signature verification failed") {
		t.Fatalf("the reason is lost: %s", body)
	}
	r.infoErr = nil

	r.compat = "another-box"
	b, ct = bundleForm(t, nil, bundle)
	resp, body = post(b, ct, "", admin)
	wantError(t, resp, body, 422, "bundle_refused")
	r.compat = ""

	free = 1 << 20
	b, ct = bundleForm(t, nil, bundle)
	resp, body = post(b, ct, "", admin)
	wantError(t, resp, body, 507, "disk_full")
	free = 1 << 40

	b, ct = bundleForm(t, map[string]string{"reboot": "25:00"}, bundle)
	resp, body = post(b, ct, "", admin)
	wantError(t, resp, body, 400, "bad_request")

	resp, body = post(bytes.NewBufferString(`{"url":"http://plain.example/b.raucb","sha256":"`+good+`"}`), "application/json", "", admin)
	wantError(t, resp, body, 400, "bad_request")

	resp, body = post(bytes.NewBufferString("x"), "text/plain", "", admin)
	wantError(t, resp, body, 415, "unsupported_media_type")

	// A file server that fails: 502, not the box's fault.
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", 404) }))
	defer files.Close()
	resp, body = post(bytes.NewBufferString(`{"url":"`+files.URL+`/b.raucb","sha256":"`+good+`"}`), "application/json", "", admin)
	wantError(t, resp, body, 502, "download_failed")

	r.hold = make(chan struct{})
	b, ct = bundleForm(t, nil, bundle)
	resp, body = post(b, ct, "?reboot=03:00&sha256="+good, admin)
	var st sysupdate.Status
	if json.Unmarshal(body, &st); resp.StatusCode != 202 || st.Phase != "installing" || st.TargetSlot != "B" || st.TargetVersion != "2.0.0" {
		t.Fatalf("good bundle: %d %s", resp.StatusCode, body)
	}
	b, ct = bundleForm(t, nil, bundle)
	resp, body = post(b, ct, "", admin)
	wantError(t, resp, body, 409, "update_running")
	close(r.hold)
	deadline := time.Now().Add(5 * time.Second)
	for m.Status().Phase != "rebooting" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, body = e.do(nil, "GET", "/api/v1/system", nil, bearer(read))
	if json.Unmarshal(body, &doc); doc.State.Phase != "rebooting" || doc.State.RebootAt == nil || doc.State.Progress != 100 {
		t.Fatalf("after install: %s", body)
	}
}

func TestSystemAPIOff(t *testing.T) {
	e := newEnv(t, envOpts{})
	read, _, _ := CreateToken(e.dir, "read", "")
	admin, _, _ := CreateToken(e.dir, "admin", "")
	resp, body := e.do(nil, "GET", "/api/v1/system", nil, bearer(read))
	var doc systemDoc
	if json.Unmarshal(body, &doc); resp.StatusCode != 200 || doc.Update != "off" || doc.Slots == nil || len(doc.Slots) != 0 {
		t.Fatalf("GET /system with update off: %d %s", resp.StatusCode, body)
	}
	h := bearer(admin)
	h["Content-Type"] = "application/json"
	resp, body = e.do(nil, "POST", "/api/v1/system/update", bytes.NewBufferString(`{"url":"https://x.example/b","sha256":"`+strings.Repeat("a", 64)+`"}`), h)
	wantError(t, resp, body, 409, "update_off")
}

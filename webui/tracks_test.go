package webui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/uploads"
)

// makeMP3 encodes a real MP3 with lame: secs seconds of a sine at freq.
func makeMP3(t testing.TB, dir, name string, secs float64, freq int) string {
	t.Helper()
	mp3 := filepath.Join(dir, name)
	testkit.SineMP3(t, mp3, secs, freq, 0.3, 128)
	return mp3
}

func openLibrary(t testing.TB, mod func(*uploads.Options)) *uploads.Library {
	t.Helper()
	o := uploads.Options{DataDir: t.TempDir(), Logger: testLogger(t), MinFreeBytes: -1}
	if mod != nil {
		mod(&o)
	}
	lib, err := uploads.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// multipartBody builds an upload form with the file under field.
func multipartBody(t testing.TB, field, name string, content []byte) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func (e *env) upload(tok, name string, content []byte, hdr map[string]string) (*http.Response, []byte) {
	body, ct := multipartBody(e.t, "file", name, content)
	h := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": ct}
	for k, v := range hdr {
		h[k] = v
	}
	return e.do(nil, "POST", "/api/v1/tracks", body, h)
}

func TestUploadAndManageTracks(t *testing.T) {
	lib := openLibrary(t, nil)
	var mu sync.Mutex
	var results, routes []string
	e := newEnv(t, envOpts{password: testPW, library: lib, opts: func(o *Options) {
		o.OnUpload = func(r string) { mu.Lock(); results = append(results, r); mu.Unlock() }
		o.Middleware = append(o.Middleware, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				mu.Lock()
				routes = append(routes, chi.RouteContext(r.Context()).RoutePattern())
				mu.Unlock()
			})
		})
	}})
	admin, _, _ := CreateToken(e.dir, "admin", "")
	reader, _, _ := CreateToken(e.dir, "read", "")
	dir := t.TempDir()
	a, _ := os.ReadFile(makeMP3(t, dir, "a.mp3", 2, 440))
	b, _ := os.ReadFile(makeMP3(t, dir, "b.mp3", 2, 660))

	resp, body := e.upload(admin, "first song.mp3", a, map[string]string{"X-Upload-Id": "up-1"})
	if resp.StatusCode != 201 {
		t.Fatalf("upload a: %d %s", resp.StatusCode, body)
	}
	var ta uploads.Track
	json.Unmarshal(body, &ta)
	if ta.ID == "" || ta.Name != "first song.mp3" || ta.Duration <= 0 {
		t.Fatalf("track %s", body)
	}
	resp, body = e.do(nil, "GET", "/api/v1/uploads/up-1", nil, bearer(admin))
	var us uploadState
	json.Unmarshal(body, &us)
	if resp.StatusCode != 200 || !us.Done || us.TrackID != ta.ID || us.Error != nil {
		t.Fatalf("progress: %d %s", resp.StatusCode, body)
	}
	// The same audio again is not a second track.
	resp, body = e.upload(admin, "copy.mp3", a, nil)
	var again uploads.Track
	json.Unmarshal(body, &again)
	if resp.StatusCode != 200 || again.ID != ta.ID {
		t.Fatalf("re-upload: %d %s", resp.StatusCode, body)
	}
	resp, body = e.upload(admin, "second.mp3", b, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("upload b: %d %s", resp.StatusCode, body)
	}
	var tb uploads.Track
	json.Unmarshal(body, &tb)

	list := func() []string {
		resp, body := e.do(nil, "GET", "/api/v1/tracks", nil, bearer(reader))
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		var tl trackList
		json.Unmarshal(body, &tl)
		var ids []string
		for _, x := range tl.Tracks {
			ids = append(ids, x.ID)
		}
		return ids
	}
	if got := list(); fmt.Sprint(got) != fmt.Sprint([]string{ta.ID, tb.ID}) {
		t.Fatalf("order %v", got)
	}
	resp, body = e.do(nil, "PUT", "/api/v1/playlist", strings.NewReader(`{"order":["`+tb.ID+`","`+ta.ID+`"]}`), bearer(admin))
	if resp.StatusCode != 200 {
		t.Fatalf("reorder: %d %s", resp.StatusCode, body)
	}
	if got := list(); fmt.Sprint(got) != fmt.Sprint([]string{tb.ID, ta.ID}) {
		t.Fatalf("order after reorder %v", got)
	}
	resp, body = e.do(nil, "PUT", "/api/v1/playlist", strings.NewReader(`{"order":["`+tb.ID+`"]}`), bearer(admin))
	wantError(t, resp, body, 400, uploads.CodeBadOrder)
	resp, body = e.do(nil, "PUT", "/api/v1/playlist", strings.NewReader(`{"order":["`+tb.ID+`","`+tb.ID+`"]}`), bearer(admin))
	wantError(t, resp, body, 400, uploads.CodeBadOrder)
	resp, body = e.do(nil, "PUT", "/api/v1/playlist", strings.NewReader(`{}`), bearer(admin))
	wantError(t, resp, body, 400, "bad_request")

	// The rendition streams with Range support; the phone preview is a WAV.
	resp, body = e.do(nil, "GET", "/api/v1/tracks/"+ta.ID+"/audio", nil, bearer(reader))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/mpeg" || len(body) < 1000 {
		t.Fatalf("audio: %d %s %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, part := e.do(nil, "GET", "/api/v1/tracks/"+ta.ID+"/audio", nil, map[string]string{"Authorization": "Bearer " + reader, "Range": "bytes=0-99"})
	if resp.StatusCode != 206 || len(part) != 100 || !bytes.Equal(part, body[:100]) {
		t.Fatalf("range: %d %d bytes", resp.StatusCode, len(part))
	}
	resp, body = e.do(nil, "GET", "/api/v1/tracks/"+ta.ID+"/preview", nil, bearer(reader))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/wav" || !bytes.HasPrefix(body, []byte("RIFF")) {
		t.Fatalf("preview: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body[:min(len(body), 16)])
	}
	resp, body = e.do(nil, "GET", "/api/v1/tracks/nosuch/preview", nil, bearer(reader))
	wantError(t, resp, body, 404, "not_found")
	resp, body = e.do(nil, "GET", "/api/v1/disk", nil, bearer(reader))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "free_bytes") {
		t.Fatalf("disk: %d %s", resp.StatusCode, body)
	}

	resp, body = e.do(nil, "DELETE", "/api/v1/tracks/"+ta.ID, nil, bearer(admin))
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(nil, "DELETE", "/api/v1/tracks/"+ta.ID, nil, bearer(admin))
	wantError(t, resp, body, 404, uploads.CodeNotFound)
	if got := list(); fmt.Sprint(got) != fmt.Sprint([]string{tb.ID}) {
		t.Fatalf("after delete %v", got)
	}
	resp, body = e.upload(admin, "bad.mp3", []byte("not audio, just words words words"), nil)
	wantError(t, resp, body, 415, uploads.CodeNotAudio)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(results) != "[ok ok ok rejected]" {
		t.Fatalf("upload results %v", results)
	}
	if !slices.Contains(routes, "/api/v1/tracks/{id}/audio") {
		t.Fatalf("middleware saw routes %v", routes)
	}
}

// TestUploadRefusals sends bad input through the real library and checks
// that its own reason reaches the client as a 4xx.
func TestUploadRefusals(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(makeMP3(t, dir, "good.mp3", 2, 440))
	cases := []struct {
		name    string
		lib     func(*uploads.Options)
		opts    func(*Options)
		file    string
		content []byte
		status  int
		code    string
	}{
		{name: "text renamed .mp3", file: "notes.mp3", content: []byte(strings.Repeat("This is not audio at all.\n", 200)), status: 415, code: uploads.CodeNotAudio},
		{name: "empty", file: "empty.mp3", content: nil, status: 422, code: uploads.CodeEmpty},
		{name: "truncated mp3", file: "cut.mp3", content: good[:len(good)/3], status: 422, code: uploads.CodeTruncated},
		{name: "library size cap", lib: func(o *uploads.Options) { o.MaxBytes = 4096 }, file: "big.mp3", content: good, status: 413, code: uploads.CodeTooLarge},
		{name: "server body cap", opts: func(o *Options) { o.MaxUploadBytes = 8192 }, file: "big.mp3", content: good, status: 413, code: "too_large"},
		{name: "disk full", lib: func(o *uploads.Options) {
			o.MinFreeBytes = 100 << 20
			o.Statfs = func(string) (uint64, uint64, error) { return 1 << 20, 1 << 30, nil }
		}, file: "good.mp3", content: good, status: 507, code: uploads.CodeDiskFull},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lib := openLibrary(t, c.lib)
			e := newEnv(t, envOpts{password: testPW, library: lib, opts: c.opts})
			admin, _, _ := CreateToken(e.dir, "admin", "")
			resp, body := e.upload(admin, c.file, c.content, map[string]string{"X-Upload-Id": "r1"})
			wantError(t, resp, body, c.status, c.code)
			var eb errorBody
			json.Unmarshal(body, &eb)
			if len(eb.Error.Message) < 10 {
				t.Fatalf("reason too vague: %q", eb.Error.Message)
			}
			t.Logf("%d %s: %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
			_, pb := e.do(nil, "GET", "/api/v1/uploads/r1", nil, bearer(admin))
			var us uploadState
			json.Unmarshal(pb, &us)
			if !us.Done || us.Error == nil || us.Error.Code != c.code {
				t.Fatalf("progress after refusal: %s", pb)
			}
			if n := len(lib.Tracks()); n != 0 {
				t.Fatalf("%d tracks after a refusal", n)
			}
		})
	}
}

func TestUploadRequestShape(t *testing.T) {
	lib := openLibrary(t, nil)
	e := newEnv(t, envOpts{password: testPW, library: lib, opts: func(o *Options) { o.MaxConcurrentUploads = 1 }})
	admin, _, _ := CreateToken(e.dir, "admin", "")
	resp, body := e.do(nil, "POST", "/api/v1/tracks", strings.NewReader("raw"), map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "audio/mpeg"})
	wantError(t, resp, body, 415, "unsupported_media_type")
	mb, ct := multipartBody(t, "other", "a.mp3", []byte("x"))
	resp, body = e.do(nil, "POST", "/api/v1/tracks", mb, map[string]string{"Authorization": "Bearer " + admin, "Content-Type": ct})
	wantError(t, resp, body, 400, "no_file")
	resp, body = e.upload(admin, "a.mp3", []byte("x"), map[string]string{"X-Upload-Id": "../../etc"})
	wantError(t, resp, body, 400, "bad_upload_id")
	resp, body = e.do(nil, "GET", "/api/v1/uploads/never", nil, bearer(admin))
	wantError(t, resp, body, 404, "not_found")

	// The concurrent-upload cap: with the one slot taken, the next waits.
	e.srv.upSlots <- struct{}{}
	resp, body = e.upload(admin, "a.mp3", []byte("x"), nil)
	wantError(t, resp, body, 429, "too_many_uploads")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	<-e.srv.upSlots
}

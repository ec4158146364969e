package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/mohproject/moh/uploads"
)

// levelLog records every log record's level and message, so a test can
// prove a client's mistake never reaches the log at ERROR.
type levelLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelLog) WithGroup(string) slog.Handler      { return l }

// errors returns the messages logged at ERROR or above since the last call.
func (l *levelLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level >= slog.LevelError {
			var attrs []string
			r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a.String()); return true })
			out = append(out, r.Message+" "+strings.Join(attrs, " "))
		}
	}
	l.recs = nil
	return out
}

const testBoundary = "mohTestBoundary42"

// rawForm is a multipart body written by hand, so each part header can be
// malformed in exactly one way.
func rawForm(partHeader string, content []byte) []byte {
	var b bytes.Buffer
	b.WriteString("--" + testBoundary + "\r\n")
	b.WriteString(partHeader)
	b.WriteString("\r\n")
	b.Write(content)
	b.WriteString("\r\n--" + testBoundary + "--\r\n")
	return b.Bytes()
}

const goodDisposition = "Content-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n"

// TestMalformedMultipart sends one kind of broken upload form per case.
// Every one is the client's mistake: it must be answered 4xx in the API's
// error shape, never 500, never logged at ERROR, and must leave the
// library as it was.
func TestMalformedMultipart(t *testing.T) {
	mp3, err := os.ReadFile(makeMP3(t, t.TempDir(), "ok.mp3", 2, 440))
	if err != nil {
		t.Fatal(err)
	}
	form := "multipart/form-data; boundary=" + testBoundary
	many := strings.Repeat("X-Pad: 1\r\n", 20000)
	cases := []struct {
		name   string
		ctype  string
		body   []byte
		status int
		code   string
	}{
		{"header line without colon", form, rawForm("Content-Disposition form-data; name=\"file\"; filename=\"a.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"space in header name", form, rawForm("Content Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"folded first header line", form, rawForm(" Content-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"NUL in header name", form, rawForm("X-\x00Bad: 1\r\n"+goodDisposition, mp3), 400, "bad_multipart"},
		{"control byte in header name", form, rawForm("X-\x01: 1\r\n"+goodDisposition, mp3), 400, "bad_multipart"},
		{"header block never ends", form, []byte("--" + testBoundary + "\r\n" + goodDisposition + "X-More: 1\r\n"), 400, ""},
		{"11 MiB filename", form, rawForm("Content-Disposition: form-data; name=\"file\"; filename=\""+strings.Repeat("a", 11<<20)+".mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"20000 part headers", form, rawForm(many+goodDisposition, mp3), 400, "bad_multipart"},
		{"NUL in the filename", form, rawForm("Content-Disposition: form-data; name=\"file\"; filename=\"a\x00b.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"bad Content-Disposition", form, rawForm("Content-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"; filename=\"b.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"unterminated quote in Content-Disposition", form, rawForm("Content-Disposition: form-data; name=\"file\"; filename=\"a.mp3\r\n", mp3), 400, "bad_multipart"},
		{"Content-Disposition not form-data", form, rawForm("Content-Disposition: attachment; name=\"file\"; filename=\"a.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"bad part Content-Type", form, rawForm(goodDisposition+"Content-Type: ;;;\r\n", mp3), 400, "bad_multipart"},
		{"NUL in an RFC 2231 filename", form, rawForm("Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%00b.mp3\r\n", mp3), 400, "bad_multipart"},
		{"Content-Disposition without a name", form, rawForm("Content-Disposition: form-data; filename=\"a.mp3\"\r\n", mp3), 400, "bad_multipart"},
		{"no Content-Disposition", form, rawForm("Content-Type: audio/mpeg\r\n", mp3), 400, "bad_multipart"},
		{"1000 empty parts", form, bytes.Repeat([]byte("--"+testBoundary+"\r\nContent-Disposition: form-data; name=\"pad\"\r\n\r\nx\r\n"), 1000), 400, "bad_multipart"},
		{"bad quoted-printable", form, rawForm(goodDisposition+"Content-Transfer-Encoding: quoted-printable\r\n", []byte("=ZZ=ZZ not hex")), 400, "bad_multipart"},
		{"missing boundary", "multipart/form-data", rawForm(goodDisposition, mp3), 400, "bad_multipart"},
		{"empty boundary", "multipart/form-data; boundary=\"\"", rawForm(goodDisposition, mp3), 400, "bad_multipart"},
		{"unparsable Content-Type", "multipart/form-data; boundary", rawForm(goodDisposition, mp3), 400, "bad_multipart"},
		{"boundary never appears", form, []byte("just some bytes, no parts at all\r\n"), 400, ""},
		{"garbage after the boundary line", form, []byte("--" + testBoundary + "junk\r\n" + goodDisposition + "\r\n" + string(mp3)), 400, ""},
		{"body ends inside the file", form, []byte("--" + testBoundary + "\r\n" + goodDisposition + "\r\n" + string(mp3[:len(mp3)/2])), 400, ""},
	}
	var logs levelLog
	lib := openLibrary(t, func(o *uploads.Options) { o.Logger = slog.New(&logs) })
	e := newEnv(t, envOpts{password: testPW, library: lib, opts: func(o *Options) { o.Logger = slog.New(&logs) }})
	admin, _, err := CreateToken(e.dir, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs.errors() // only this request's records count
			resp, body := e.do(nil, "POST", "/api/v1/tracks", bytes.NewReader(c.body),
				map[string]string{"Authorization": "Bearer " + admin, "Content-Type": c.ctype})
			if errs := logs.errors(); len(errs) > 0 {
				t.Errorf("client mistake logged at ERROR: %q", errs)
			}
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d, want 4xx: %s", resp.StatusCode, body)
			}
			wantError(t, resp, body, c.status, c.code)
			var eb errorBody
			json.Unmarshal(body, &eb)
			if len(eb.Error.Message) > 300 {
				t.Errorf("message of %d bytes: the answer must not echo the client's input back", len(eb.Error.Message))
			}
			t.Logf("%d %s: %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
			if n := len(lib.Tracks()); n != 0 {
				t.Fatalf("library changed: %d tracks", n)
			}
		})
	}
	// The same file, well formed, is accepted: the refusals above were for
	// the form, not the audio.
	resp, body := e.upload(admin, "a.mp3", mp3, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("well-formed upload: %d %s", resp.StatusCode, body)
	}
}

package webui

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// fakeClock is a settable clock for session expiry and throttling tests.
type fakeClock = testkit.Clock

func newFakeClock() *fakeClock { return testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is a running moh web server for a test.
type env struct {
	t      testing.TB
	dir    string
	srv    *Server
	ts     *httptest.Server
	clock  *fakeClock
	player *player.Player
}

type envOpts struct {
	clock    *fakeClock
	library  Library
	password string // set before start unless empty
	opts     func(*Options)
}

func newEnv(t testing.TB, eo envOpts) *env {
	t.Helper()
	dir := t.TempDir()
	if eo.password != "" {
		if err := SetPassword(dir, eo.password); err != nil {
			t.Fatal(err)
		}
	}
	pl := eo.testPlayer(t)
	o := Options{
		Player:  pl,
		DataDir: dir,
		Logger:  testLogger(t),
		Version: "test-1",
	}
	if eo.library != nil {
		o.Library = eo.library
	}
	if eo.clock != nil {
		o.Now = eo.clock.Now
	}
	if eo.opts != nil {
		eo.opts(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	// Every response to a documented operation is checked against the
	// OpenAPI spec (openapi_test.go).
	ts := httptest.NewServer(specCheck(t, s.Handler()))
	t.Cleanup(ts.Close)
	return &env{t: t, dir: dir, srv: s, ts: ts, clock: eo.clock, player: pl}
}

// do sends a request and returns the response with its body read.
func (e *env) do(c *http.Client, method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = noRedirect(nil)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// login logs in through the real form and returns a client holding the
// session cookie and the session's CSRF token.
func (e *env) login(pw string) (*http.Client, string) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	resp, body := e.do(c, "GET", "/login", nil, nil)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET /login: %d %s", resp.StatusCode, body)
	}
	m := hiddenCSRF.FindSubmatch(body)
	if m == nil {
		e.t.Fatalf("no form token in login page")
	}
	form := url.Values{"password": {pw}, "csrf": {string(m[1])}}
	resp, body = e.do(c, "POST", "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		e.t.Fatalf("POST /login: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(c, "GET", "/", nil, nil)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET / after login: %d", resp.StatusCode)
	}
	mm := metaCSRF.FindSubmatch(body)
	if mm == nil {
		e.t.Fatalf("no csrf meta in page")
	}
	return c, string(mm[1])
}

// wantError checks status and that the body is the API's error shape with
// the given code.
func wantError(t testing.TB, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: content type %q, want JSON", resp.Request.URL.Path, ct)
	}
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("%s: not the error shape: %s", resp.Request.URL.Path, body)
	}
	if eb.Error.Message == "" {
		t.Fatalf("%s: empty error message: %s", resp.Request.URL.Path, body)
	}
	if code != "" && eb.Error.Code != code {
		t.Fatalf("%s: error code %q, want %q (%s)", resp.Request.URL.Path, eb.Error.Code, code, body)
	}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// runPlayer runs p until the test ends.
func runPlayer(t testing.TB, p *player.Player) {
	testkit.Go(t, p.Run)
}

// directPlayer is a Player, not yet run, over the direct backend made
// with o and the test's logger, falling back to the tone in a temp dir.
func directPlayer(t testing.TB, o player.DirectOptions) (*player.Player, *player.Direct) {
	t.Helper()
	fb, err := player.EnsureFallback(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = testLogger(t)
	d := player.NewDirect(o)
	return player.New(player.Options{Backend: d, Logger: testLogger(t), Fallback: fb, Settings: player.DefaultSettings}), d
}

// openNullSink is a DirectOptions.OpenSink for a player nobody hears.
func openNullSink(context.Context) (player.Sink, error) { return player.NewNullSink(nil), nil }

// libraryTracks is lib's tracks as the player's playlist, the way mohd
// hands them over.
func libraryTracks(lib *uploads.Library) []player.Track {
	var out []player.Track
	for _, tr := range lib.Tracks() {
		out = append(out, player.Track{ID: tr.ID, Name: tr.Name, Path: tr.Path})
	}
	return out
}

func newJar() http.CookieJar {
	j, _ := cookiejar.New(nil)
	return j
}

func readAll(t testing.TB, r *http.Response) []byte {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveLoopback serves s on a loopback port until the test ends.
func serveLoopback(t testing.TB, s *Server) net.Listener {
	t.Helper()
	ln := listenLoopback(t)
	testkit.Go(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	return ln
}

// tokenPerScope creates one token of each scope in the env's data dir.
func (e *env) tokenPerScope(t *testing.T) map[Scope]string {
	t.Helper()
	tokens := map[Scope]string{}
	for _, sc := range []Scope{ScopeRead, ScopeOperate, ScopeAdmin} {
		tok, _, err := CreateToken(e.dir, sc.String(), "test "+sc.String())
		if err != nil {
			t.Fatal(err)
		}
		tokens[sc] = tok
	}
	return tokens
}

package webui

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/status"
)

const testPW = "correct horse battery"

func TestNoDefaultPasswordSetupFlow(t *testing.T) {
	e := newEnv(t, envOpts{})
	code := e.srv.SetupCode()
	if code == "" {
		t.Fatal("no setup code on a fresh data dir")
	}
	// Nothing gets in before setup: the page redirects, the API refuses.
	resp, _ := e.do(nil, "GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/setup" {
		t.Fatalf("GET / before setup: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := e.do(nil, "GET", "/api/v1/status", nil, nil)
	wantError(t, resp, body, 401, "unauthenticated")
	resp, _ = e.do(nil, "GET", "/login", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/setup" {
		t.Fatalf("GET /login before setup: %d", resp.StatusCode)
	}

	c := noRedirect(newJar())
	_, page := e.do(c, "GET", "/setup", nil, nil)
	tok := string(hiddenCSRF.FindSubmatch(page)[1])
	post := func(code, pw, confirm, csrf string) (*http.Response, []byte) {
		f := url.Values{"code": {code}, "password": {pw}, "confirm": {confirm}, "csrf": {csrf}}
		return e.do(c, "POST", "/setup", strings.NewReader(f.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	}
	if resp, body := post("WRONG-CODE", testPW, testPW, tok); resp.StatusCode != 401 || !strings.Contains(string(body), "Wrong setup code") {
		t.Fatalf("wrong code: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(code, testPW, testPW, "forged"); resp.StatusCode != 403 {
		t.Fatalf("forged form token: %d", resp.StatusCode)
	}
	if resp, body := post(code, "short", "short", tok); resp.StatusCode != 400 || !strings.Contains(string(body), "too short") {
		t.Fatalf("short password: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(code, testPW, testPW+"x", tok); resp.StatusCode != 400 {
		t.Fatalf("mismatched confirm: %d", resp.StatusCode)
	}
	if set, _ := PasswordSet(e.dir); set {
		t.Fatal("password stored after refused attempts")
	}
	// Lower case and without dashes is accepted: people type what they read.
	resp, body = post(strings.ToLower(strings.ReplaceAll(code, "-", "")), testPW, testPW, tok)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("setup: %d %s", resp.StatusCode, body)
	}
	if e.srv.SetupCode() != "" {
		t.Fatal("setup code still valid after setup")
	}
	if resp, _ := e.do(c, "GET", "/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("setup did not log in: %d", resp.StatusCode)
	}
	// The code is one-time: setup is closed now.
	if resp, _ := post(code, "another password", "another password", tok); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("second setup: %d", resp.StatusCode)
	}
	ok, err := e.srv.creds.checkPassword(testPW)
	if err != nil || !ok {
		t.Fatalf("stored password does not verify: %v %v", ok, err)
	}
	raw, _ := os.ReadFile(filepath.Join(e.dir, PasswordFile))
	if strings.Contains(string(raw), testPW) || !strings.HasPrefix(string(raw), "$argon2id$") {
		t.Fatalf("password file is not an argon2id hash: %q", raw)
	}
}

func TestPasswordSetWhileRunning(t *testing.T) {
	e := newEnv(t, envOpts{})
	if e.srv.SetupCode() == "" {
		t.Fatal("want a setup code")
	}
	// `mohd passwd` in another process while the daemon runs.
	if err := SetPassword(e.dir, testPW); err != nil {
		t.Fatal(err)
	}
	if e.srv.SetupCode() != "" {
		t.Fatal("setup still open after mohd passwd")
	}
	c, _ := e.login(testPW)
	if err := SetPassword(e.dir, "a new password"); err != nil {
		t.Fatal(err)
	}
	// Changing the password logs out everybody who knew the old one.
	resp, body := e.do(c, "GET", "/api/v1/status", nil, nil)
	wantError(t, resp, body, 401, "unauthenticated")
	c, _ = e.login("a new password")
	if resp, _ := e.do(c, "GET", "/api/v1/status", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("new session: %d", resp.StatusCode)
	}
}

func TestScopesFromSpec(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	tokens := e.tokenPerScope(t)
	var spec struct {
		Paths map[string]map[string]struct {
			Scope string `json:"x-moh-scope"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiSpec, &spec); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, ops := range spec.Paths {
		for method, op := range ops {
			need, err := ParseScope(op.Scope)
			if err != nil {
				continue // public routes and the page's own
			}
			p := strings.ReplaceAll(path, "{id}", "nosuchid")
			m := strings.ToUpper(method)
			name := m + " " + path
			t.Run(name, func(t *testing.T) {
				resp, body := e.do(nil, m, p, nil, nil)
				wantError(t, resp, body, 401, "unauthenticated")
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				resp, body = e.do(nil, m, p, nil, bearer("moh_notatoken"))
				wantError(t, resp, body, 401, "invalid_token")
				resp, body = e.do(nil, m, p, nil, map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="})
				wantError(t, resp, body, 401, "invalid_token")
				for sc := ScopeRead; sc <= ScopeAdmin; sc++ {
					resp, body := e.do(nil, m, p, strings.NewReader("{}"), bearer(tokens[sc]))
					if sc < need {
						wantError(t, resp, body, 403, "forbidden")
						continue
					}
					if resp.StatusCode == 401 || resp.StatusCode == 403 {
						t.Errorf("scope %s refused: %d %s", sc, resp.StatusCode, body)
					}
				}
			})
			checked++
		}
	}
	if checked < 18 {
		t.Fatalf("only %d scoped operations in the spec", checked)
	}
}

func TestSessionCSRFAndCrossSite(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	c, csrf := e.login(testPW)
	vol := func(hdr map[string]string) (*http.Response, []byte) {
		return e.do(c, "PUT", "/api/v1/volume", strings.NewReader(`{"volume":42}`), hdr)
	}
	if resp, body := e.do(c, "GET", "/api/v1/status", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("session GET status: %d %s", resp.StatusCode, body)
	}
	resp, body := vol(nil)
	wantError(t, resp, body, 403, "csrf")
	resp, body = vol(map[string]string{csrfHeader: "wrong"})
	wantError(t, resp, body, 403, "csrf")
	resp, body = vol(map[string]string{csrfHeader: csrf, "Origin": "http://evil.example"})
	wantError(t, resp, body, 403, "cross_site")
	resp, body = vol(map[string]string{csrfHeader: csrf, "Origin": "null"})
	wantError(t, resp, body, 403, "cross_site")
	resp, body = vol(map[string]string{csrfHeader: csrf, "Origin": e.ts.URL, "Sec-Fetch-Site": "cross-site"})
	wantError(t, resp, body, 403, "cross_site")
	resp, body = vol(map[string]string{csrfHeader: csrf, "Sec-Fetch-Site": "cross-site"})
	wantError(t, resp, body, 403, "cross_site")
	resp, body = vol(map[string]string{csrfHeader: csrf, "Sec-Fetch-Site": "same-site"})
	wantError(t, resp, body, 403, "cross_site")
	if got := e.player.Settings().Volume; got == 42 {
		t.Fatal("a refused request changed the volume")
	}
	resp, body = vol(map[string]string{csrfHeader: csrf, "Origin": e.ts.URL, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != 200 {
		t.Fatalf("good session PUT: %d %s", resp.StatusCode, body)
	}
	if got := e.player.Settings().Volume; got != 42 {
		t.Fatalf("volume %d, want 42", got)
	}

	// Logout needs the token too, and ends the session.
	resp, body = e.do(c, "POST", "/logout", strings.NewReader("csrf=wrong"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	wantError(t, resp, body, 403, "csrf")
	resp, _ = e.do(c, "POST", "/logout", strings.NewReader("csrf="+url.QueryEscape(csrf)), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	resp, body = e.do(c, "GET", "/api/v1/status", nil, nil)
	wantError(t, resp, body, 401, "unauthenticated")

	// A cross-site login form post is refused before the password is looked at.
	resp, _ = e.do(noRedirect(newJar()), "POST", "/login", strings.NewReader("password=x&csrf=y"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site login: %d", resp.StatusCode)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	c := noRedirect(newJar())
	_, page := e.do(c, "GET", "/login", nil, nil)
	tok := string(hiddenCSRF.FindSubmatch(page)[1])
	resp, _ := e.do(c, "POST", "/login", strings.NewReader(url.Values{"password": {testPW}, "csrf": {tok}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.MaxAge <= 0 || len(sc.Value) < 40 {
		t.Fatalf("session cookie %+v", sc)
	}
	if sc.Secure {
		t.Fatal("Secure cookie over plain HTTP would never be sent back")
	}
	// Under TLS the cookie is Secure.
	ts := httptest.NewTLSServer(e.srv.Handler())
	defer ts.Close()
	cl := ts.Client()
	cl.Jar = newJar()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r1, err := cl.Get(ts.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, r1)
	tok = string(hiddenCSRF.FindSubmatch(b)[1])
	r2, err := cl.PostForm(ts.URL+"/login", url.Values{"password": {testPW}, "csrf": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	found := false
	for _, ck := range r2.Cookies() {
		if ck.Name == sessionCookie {
			found = true
			if !ck.Secure {
				t.Fatal("session cookie not Secure under TLS")
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie under TLS: %d", r2.StatusCode)
	}
}

func TestSessionExpiry(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{password: testPW, clock: clock, opts: func(o *Options) {
		o.SessionIdle = 30 * time.Minute
		o.SessionLifetime = 2 * time.Hour
	}})
	c, _ := e.login(testPW)
	get := func() int {
		resp, _ := e.do(c, "GET", "/api/v1/status", nil, nil)
		return resp.StatusCode
	}
	// Active use keeps the session alive up to its lifetime...
	for i := 0; i < 7; i++ {
		clock.Advance(15 * time.Minute)
		if s := get(); s != 200 {
			t.Fatalf("after %v of activity: %d", time.Duration(i+1)*15*time.Minute, s)
		}
	}
	clock.Advance(15 * time.Minute) // 2 h since login
	resp, body := e.do(c, "GET", "/api/v1/status", nil, nil)
	wantError(t, resp, body, 401, "unauthenticated")

	// ...and idleness ends it sooner.
	c, _ = e.login(testPW)
	clock.Advance(29 * time.Minute)
	if s := get(); s != 200 {
		t.Fatalf("29 min idle: %d", s)
	}
	clock.Advance(30 * time.Minute)
	if s := get(); s != 401 {
		t.Fatalf("30 min idle: %d", s)
	}
	resp, _ = e.do(c, "GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("page after expiry: %d", resp.StatusCode)
	}
}

// postLogin posts the login form from addr, straight into the handler so
// the test can choose the client address.
func postLogin(h http.Handler, addr, pw string) *httptest.ResponseRecorder {
	const tok = "0123456789abcdef0123456789abcdef0123456789a"
	f := url.Values{"password": {pw}, "csrf": {tok}}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(&http.Cookie{Name: preCookie, Value: tok})
	r.RemoteAddr = addr + ":40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestLoginThrottling(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{password: testPW, clock: clock})
	h := e.srv.Handler()
	for i := 0; i < 5; i++ {
		if w := postLogin(h, "192.0.2.1", "wrong"); w.Code != 401 {
			t.Fatalf("attempt %d: %d", i, w.Code)
		}
	}
	// Even the right password waits now: otherwise guessing continues.
	w := postLogin(h, "192.0.2.1", testPW)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("6th attempt: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	// Another address is not affected.
	if w := postLogin(h, "192.0.2.2", testPW); w.Code != http.StatusSeeOther {
		t.Fatalf("other address: %d", w.Code)
	}
	clock.Advance(61 * time.Second)
	if w := postLogin(h, "192.0.2.1", testPW); w.Code != http.StatusSeeOther {
		t.Fatalf("after waiting: %d", w.Code)
	}

	// IPv6 addresses of one /64 share a bucket.
	for i := 0; i < 5; i++ {
		postLogin(h, fmt.Sprintf("[2001:db8:1:2::%x]", i+1), "wrong")
	}
	if w := postLogin(h, "[2001:db8:1:2:ffff::9]", testPW); w.Code != 429 {
		t.Fatalf("same /64: %d", w.Code)
	}
	if w := postLogin(h, "[2001:db8:1:3::1]", testPW); w.Code != http.StatusSeeOther {
		t.Fatalf("other /64: %d", w.Code)
	}

	// The global cap: many addresses guessing together are slowed too,
	// once each has failed; a clean address is never refused for it, so
	// such a flood cannot lock the admin out.
	clock.Advance(time.Hour)
	refused := 0
	for i := 0; i < 120; i++ {
		for range 2 {
			if w := postLogin(h, fmt.Sprintf("198.51.100.%d", i), "wrong"); w.Code == 429 {
				refused++
			}
		}
	}
	if refused < 60 {
		t.Fatalf("global cap: only %d of 240 guesses from 120 addresses refused", refused)
	}
	if w := postLogin(h, "203.0.113.9", testPW); w.Code != http.StatusSeeOther {
		t.Fatalf("clean address under the global cap: %d", w.Code)
	}
}

func TestTokensLifecycle(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	admin, info, err := CreateToken(e.dir, "admin", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(admin, "moh_") || info.Scope != ScopeAdmin || info.Name != "ops" {
		t.Fatalf("token %q %+v", admin, info)
	}
	raw, _ := os.ReadFile(filepath.Join(e.dir, TokensFile))
	if strings.Contains(string(raw), admin) || strings.Contains(string(raw), strings.TrimPrefix(admin, "moh_")) {
		t.Fatal("token stored in clear")
	}
	if _, _, err := CreateToken(e.dir, "root", ""); err == nil {
		t.Fatal("unknown scope accepted")
	}

	// Create one over the API, use it, list, revoke.
	resp, body := e.do(nil, "POST", "/api/v1/tokens", strings.NewReader(`{"scope":"read","name":"monitor"}`), bearer(admin))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var ct createdToken
	if err := json.Unmarshal(body, &ct); err != nil || ct.Token == "" || ct.ID == "" || ct.Scope != ScopeRead {
		t.Fatalf("created token %s", body)
	}
	if resp, _ := e.do(nil, "GET", "/api/v1/status", nil, bearer(ct.Token)); resp.StatusCode != 200 {
		t.Fatalf("new read token: %d", resp.StatusCode)
	}
	resp, body = e.do(nil, "GET", "/api/v1/tokens", nil, bearer(admin))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"monitor"`) || strings.Contains(string(body), ct.Token) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	var listed struct{ Tokens []listedToken }
	json.Unmarshal(body, &listed)
	for _, lt := range listed.Tokens {
		if lt.Current != (lt.ID == info.ID) {
			t.Fatalf("current flag wrong: %s", body)
		}
	}
	resp, body = e.do(nil, "POST", "/api/v1/tokens", strings.NewReader(`{"scope":"superuser"}`), bearer(admin))
	wantError(t, resp, body, 400, "bad_scope")
	resp, body = e.do(nil, "POST", "/api/v1/tokens", strings.NewReader(`{"scope":"read","extra":1}`), bearer(admin))
	wantError(t, resp, body, 400, "bad_request")
	resp, body = e.do(nil, "DELETE", "/api/v1/tokens/"+ct.ID, nil, bearer(admin))
	if resp.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(nil, "GET", "/api/v1/status", nil, bearer(ct.Token))
	wantError(t, resp, body, 401, "invalid_token")
	resp, body = e.do(nil, "DELETE", "/api/v1/tokens/"+ct.ID, nil, bearer(admin))
	wantError(t, resp, body, 404, "not_found")

	// Revoked from the CLI while the daemon runs: refused at once.
	if err := RevokeToken(e.dir, info.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = e.do(nil, "GET", "/api/v1/status", nil, bearer(admin))
	wantError(t, resp, body, 401, "invalid_token")
	list, err := ListTokens(e.dir)
	if err != nil || len(list) != 0 {
		t.Fatalf("tokens left: %v %v", list, err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	for _, p := range []string{"/login", "/healthz", "/api/v1/status", "/static/app.js", "/nope"} {
		resp, _ := e.do(nil, "GET", p, nil, nil)
		h := resp.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" ||
			h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers missing: %v", p, h)
		}
	}
	resp, body := e.do(nil, "GET", "/api/v1/nope", nil, nil)
	wantError(t, resp, body, 404, "not_found")
	resp, body = e.do(nil, "PATCH", "/api/v1/status", nil, nil)
	wantError(t, resp, body, 405, "method_not_allowed")
}

func TestVolumeValidation(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	tok, _, _ := CreateToken(e.dir, "operate", "")
	for _, b := range []string{``, `{}`, `{"volume":101}`, `{"volume":-1}`, `{"volume":"50"}`, `{"volume":50}{"x":1}`, `[50]`} {
		resp, body := e.do(nil, "PUT", "/api/v1/volume", strings.NewReader(b), bearer(tok))
		if resp.StatusCode != 400 {
			t.Errorf("body %q: %d %s", b, resp.StatusCode, body)
		}
		wantError(t, resp, body, 400, "")
	}
	resp, body := e.do(nil, "PUT", "/api/v1/volume", strings.NewReader(`{"volume":7}`), map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"})
	wantError(t, resp, body, 415, "unsupported_media_type")
	resp, body = e.do(nil, "PUT", "/api/v1/volume", strings.NewReader(`{"volume":7}`), bearer(tok))
	if resp.StatusCode != 200 || e.player.Settings().Volume != 7 {
		t.Fatalf("volume 7: %d %s", resp.StatusCode, body)
	}
	big := `{"volume":1,"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	resp, body = e.do(nil, "PUT", "/api/v1/volume", strings.NewReader(big), bearer(tok))
	wantError(t, resp, body, 413, "too_large")
}

func TestMetricsAuth(t *testing.T) {
	m := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("moh_audio_flowing 1\n")) })
	open := newEnv(t, envOpts{password: testPW, opts: func(o *Options) { o.Metrics = m }})
	if resp, body := open.do(nil, "GET", "/metrics", nil, nil); resp.StatusCode != 200 || !strings.Contains(string(body), "moh_audio_flowing") {
		t.Fatalf("public metrics: %d %s", resp.StatusCode, body)
	}
	closed := newEnv(t, envOpts{password: testPW, opts: func(o *Options) { o.Metrics = m; o.MetricsAuth = true }})
	resp, body := closed.do(nil, "GET", "/metrics", nil, nil)
	wantError(t, resp, body, 401, "unauthenticated")
	tok, _, _ := CreateToken(closed.dir, "read", "prometheus")
	if resp, _ := closed.do(nil, "GET", "/metrics", nil, bearer(tok)); resp.StatusCode != 200 {
		t.Fatalf("metrics with token: %d", resp.StatusCode)
	}
	none := newEnv(t, envOpts{password: testPW})
	resp, body = none.do(nil, "GET", "/metrics", nil, nil)
	wantError(t, resp, body, 404, "not_found")
}

func TestTLSAuto(t *testing.T) {
	dir := t.TempDir()
	c1, k1, err := EnsureSelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(c1)
	// Kept, not regenerated: browsers that trust it keep trusting it.
	c2, _, err := EnsureSelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(c2)
	if !bytes.Equal(first, second) {
		t.Fatal("certificate regenerated on second start")
	}
	if fi, _ := os.Stat(k1); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	// A corrupt pair is replaced.
	os.WriteFile(c1, []byte("garbage"), 0o644)
	if _, _, err := EnsureSelfSigned(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(c1, k1); err != nil {
		t.Fatalf("after repair: %v", err)
	}

	// A server with TLSAuto answers HTTPS with a Secure session cookie.
	p := envOpts{}.testPlayer(t)
	SetPassword(dir, testPW)
	s, err := New(Options{Player: p, DataDir: dir, Logger: testLogger(t), TLSAuto: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.TLS() {
		t.Fatal("TLSAuto without TLS")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := cl.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil {
		t.Fatal("not TLS")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if _, err := New(Options{Player: p, DataDir: dir, TLSAuto: true, TLSCert: c1, TLSKey: k1}); err == nil {
		t.Fatal("auto and explicit cert together accepted")
	}
	if _, err := New(Options{Player: p, DataDir: dir, TLSCert: c1}); err == nil {
		t.Fatal("cert without key accepted")
	}
}

func TestPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := SetPassword(dir, "short"); err == nil {
		t.Fatal("short password accepted")
	}
	if set, _ := PasswordSet(dir); set {
		t.Fatal("refused password stored")
	}
	os.WriteFile(filepath.Join(dir, PasswordFile), []byte("plaintext\n"), 0o600)
	c := newCredentials(dir)
	if ok, err := c.checkPassword("plaintext"); ok || err == nil {
		t.Fatalf("a non-hash password file must not log anyone in: %v %v", ok, err)
	}
	h, _ := hashPassword("the password")
	for _, bad := range []string{
		strings.Replace(h, "m=19456", "m=999999999", 1),
		strings.Replace(h, "t=2", "t=0", 1),
		strings.Replace(h, "$argon2id$", "$argon2i$", 1),
	} {
		if ok, err := verifyPassword(bad, "the password"); ok || err == nil {
			t.Errorf("%s: %v %v", bad, ok, err)
		}
	}
	if ok, err := verifyPassword(h, "the password"); !ok || err != nil {
		t.Fatalf("good hash: %v %v", ok, err)
	}
	if ok, _ := verifyPassword(h, "the passworD"); ok {
		t.Fatal("wrong password accepted")
	}
}

// TestStatusFreshAfterChange: the status snapshot cache must not hide an
// admin's own change from the very next read.
func TestStatusFreshAfterChange(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	tok, _, _ := CreateToken(e.dir, "operate", "")
	get := func() status.Doc {
		_, body := e.do(nil, "GET", "/api/v1/status", nil, bearer(tok))
		var st status.Doc
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("status %s", body)
		}
		return st
	}
	get() // fill the cache
	for _, v := range []int{11, 57, 93} {
		e.do(nil, "PUT", "/api/v1/volume", strings.NewReader(fmt.Sprintf(`{"volume":%d}`, v)), bearer(tok))
		if st := get(); st.Volume != v {
			t.Fatalf("status right after volume %d shows %d", v, st.Volume)
		}
	}
	_, body := e.do(nil, "POST", "/api/v1/player/stop", nil, bearer(tok))
	var st status.Doc
	json.Unmarshal(body, &st)
	if st.Wanted != "stopped" || get().Wanted != "stopped" {
		t.Fatalf("after stop: %s", body)
	}
	_, body = e.do(nil, "POST", "/api/v1/player/play", nil, bearer(tok))
	json.Unmarshal(body, &st)
	if st.Wanted != "playing" || get().Wanted != "playing" {
		t.Fatalf("after play: %s", body)
	}
}

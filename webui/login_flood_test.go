package webui

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/player"
)

// setCheapPassword stores pw hashed with tiny argon2id parameters, as
// `mohd passwd` would store it (atomically, a new file), so that a test
// can check thousands of guesses in seconds: verifyPassword takes the
// parameters from the stored hash.
func setCheapPassword(t testing.TB, dir, pw string) {
	t.Helper()
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	b64 := base64.RawStdEncoding
	h := fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s\n", argon2.Version, b64.EncodeToString(salt), b64.EncodeToString(key))
	if err := atomicfile.WriteFile(filepath.Join(dir, PasswordFile), []byte(h), 0o600); err != nil {
		t.Fatal(err)
	}
}

// floodLogin sends n wrong logins at once from addr through the handler
// and returns how many got each status.
func floodLogin(h http.Handler, addr string, n int) map[int]int {
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := postLogin(h, addr, fmt.Sprintf("wrong %d", i))
			mu.Lock()
			codes[w.Code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes
}

// TestLoginFloodOneAddress: 300 wrong logins at once from one address get
// no more guesses checked than the limit of 5; the rest are refused with
// Retry-After, and the throttled page names the console reset.
func TestLoginFloodOneAddress(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{password: testPW, clock: clock})
	h := e.srv.Handler()
	checked := 0
	// A busy hash gate gives the guess back, so the attacker may try
	// again: three rounds, and still no more than 5 checked in all.
	for round := range 3 {
		codes := floodLogin(h, "192.0.2.1", 300)
		checked += codes[http.StatusUnauthorized]
		if codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != 300 {
			t.Fatalf("round %d: answers %v", round, codes)
		}
	}
	if checked > 5 {
		t.Fatalf("900 concurrent wrong logins from one address: %d checked, limit 5", checked)
	}
	// Busy answers gave their guesses back: the rest of the 5 are there.
	for checked < 6 {
		w := postLogin(h, "192.0.2.1", "wrong")
		if w.Code == http.StatusTooManyRequests && !strings.Contains(w.Body.String(), "busy") {
			break
		}
		if w.Code == http.StatusUnauthorized {
			checked++
		}
	}
	if checked != 5 {
		t.Fatalf("one address: %d guesses checked in all, want 5", checked)
	}
	w := postLogin(h, "192.0.2.1", testPW)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("throttled address: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if !strings.Contains(w.Body.String(), "mohd passwd") {
		t.Fatalf("throttled page does not name the console reset: %s", w.Body)
	}
}

// TestSetupCodeFlood: the setup-code form is counted the same way.
func TestSetupCodeFlood(t *testing.T) {
	e := newEnv(t, envOpts{clock: newFakeClock()})
	h := e.srv.Handler()
	const tok = "0123456789abcdef0123456789abcdef0123456789a"
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := url.Values{"code": {fmt.Sprintf("WRONG-%d", i)}, "password": {testPW}, "confirm": {testPW}, "csrf": {tok}}
			r := httptest.NewRequest("POST", "/setup", strings.NewReader(f.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(&http.Cookie{Name: preCookie, Value: tok})
			r.RemoteAddr = "192.0.2.7:40000"
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			mu.Lock()
			codes[w.Code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] > 5 || codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != 300 {
		t.Fatalf("300 concurrent wrong setup codes: %v, want at most 5 checked (401)", codes)
	}
}

// TestAdminNotLockedOut: 11 addresses × 5 wrong guesses empty the global
// budget, and one guess per 2 s keeps it empty; the admin's right password
// from a clean address still gets in every time.
func TestAdminNotLockedOut(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{clock: clock, opts: func(o *Options) { setCheapPassword(t, o.DataDir, testPW) }})
	h := e.srv.Handler()
	for i := range 11 {
		for range 5 {
			postLogin(h, fmt.Sprintf("198.51.100.%d", i), "wrong")
		}
	}
	for i := range 10 {
		clock.Advance(2 * time.Second)
		postLogin(h, fmt.Sprintf("198.51.100.%d", 50+i), "wrong")
		postLogin(h, fmt.Sprintf("198.51.100.%d", i%11), "wrong")
		w := postLogin(h, "203.0.113.9", testPW)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("round %d: admin from a clean address: %d %s", i, w.Code, w.Body)
		}
	}
	// The attackers stay slowed: an address that failed before waits.
	if w := postLogin(h, "198.51.100.55", "wrong"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("dirty address under an empty global budget: %d", w.Code)
	}
}

// TestSecurityEvents: failed logins, throttling, password changes and
// token changes reach the event list (kind "security"), and a flood from
// many addresses cannot push the other events out of it.
func TestSecurityEvents(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{clock: clock, opts: func(o *Options) { setCheapPassword(t, o.DataDir, testPW) }})
	h := e.srv.Handler()
	ev := e.player.Events()
	ev.Add(player.Event{Kind: "recovered", Message: "a watchdog event the flood must not flush"})
	find := func(sub string) int {
		n := 0
		for _, x := range ev.Recent(0) {
			if x.Kind == "security" && strings.Contains(x.Message, sub) {
				n++
			}
		}
		return n
	}
	for range 20 {
		postLogin(h, "192.0.2.1", "wrong")
	}
	if n := find("failed login from 192.0.2.1"); n != 1 {
		t.Fatalf("%d failed-login events for one address, want 1", n)
	}
	if n := find("throttled for 192.0.2.1"); n != 1 {
		t.Fatalf("%d throttle events for one address, want 1", n)
	}

	admin, _, err := CreateToken(e.dir, "admin", "ops")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(nil, "POST", "/api/v1/tokens", strings.NewReader(`{"scope":"read","name":"monitor"}`), bearer(admin))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	if find("API token created: read monitor") != 1 {
		t.Fatalf("no token-created event: %+v", ev.Recent(5))
	}
	id := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]
	if resp, _ := e.do(nil, "DELETE", "/api/v1/tokens/"+id, nil, bearer(admin)); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if find("API token revoked: "+id) != 1 {
		t.Fatalf("no token-revoked event: %+v", ev.Recent(5))
	}

	// `mohd passwd` from the console: an event, and the throttled
	// address may log in again at once.
	setCheapPassword(t, e.dir, "a new password")
	if w := postLogin(h, "192.0.2.1", "a new password"); w.Code != http.StatusSeeOther {
		t.Fatalf("login from the throttled address after mohd passwd: %d", w.Code)
	}
	if find("admin password changed") != 1 {
		t.Fatalf("no password-changed event: %+v", ev.Recent(5))
	}

	// A flood from 600 addresses, 2 guesses each, over a day.
	for i := range 600 {
		clock.Advance(144 * time.Second)
		for range 2 {
			postLogin(h, fmt.Sprintf("10.0.%d.%d", i/250, i%250), "wrong")
		}
	}
	sec := 0
	kept := false
	for _, x := range ev.Recent(0) {
		if x.Kind == "security" {
			sec++
		}
		kept = kept || x.Kind == "recovered"
	}
	if !kept || sec > 80 {
		t.Fatalf("a day's login flood: %d security events, watchdog event kept %v", sec, kept)
	}
	if find("login flood:") == 0 {
		t.Fatal("no summary of the suppressed events")
	}
}

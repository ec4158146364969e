package webui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestThrottleReservation: a guess is counted when it is reserved, before
// its password is checked, so concurrent guesses cannot all slip past the
// limit; a right guess (refund) costs nothing.
func TestThrottleReservation(t *testing.T) {
	clock := newFakeClock()
	th := newThrottle(clock.Now, "", nil)

	var mu sync.Mutex
	var got []*reservation
	var wg sync.WaitGroup
	for range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, _ := th.reserve("192.0.2.1"); r != nil {
				mu.Lock()
				got = append(got, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 5 {
		t.Fatalf("300 concurrent reservations from one address: %d granted, want 5", len(got))
	}
	r, wait := th.reserve("192.0.2.1")
	if r != nil || wait <= 0 || wait > time.Minute {
		t.Fatalf("6th reservation: %v, wait %v", r, wait)
	}
	// Refunds (right password, or never checked) give the guesses back;
	// refunding twice gives back only one.
	for _, r := range got {
		r.refund()
		r.refund()
		r.fail() // no effect after a refund
	}
	for i := range 5 {
		r, _ := th.reserve("192.0.2.1")
		if r == nil {
			t.Fatalf("reservation %d after refunds refused", i)
		}
		r.fail()
	}
	if r, _ := th.reserve("192.0.2.1"); r != nil {
		t.Fatal("a 6th guess after 5 failures")
	}
	// One guess regained per minute.
	clock.Advance(61 * time.Second)
	if r, _ := th.reserve("192.0.2.1"); r == nil {
		t.Fatal("no guess regained after a minute")
	} else {
		r.fail()
	}
	if r, _ := th.reserve("192.0.2.1"); r != nil {
		t.Fatal("two guesses regained after one minute")
	}
}

// TestThrottleCleanAddress: the global budget, emptied by many addresses
// failing, refuses addresses that failed before but never a clean one.
func TestThrottleCleanAddress(t *testing.T) {
	clock := newFakeClock()
	th := newThrottle(clock.Now, "", nil)
	// 11 addresses × 5 wrong guesses: more than the global budget of 50.
	spent := 0
	for i := range 11 {
		for range 5 {
			if r, _ := th.reserve(fmt.Sprintf("198.51.100.%d", i)); r != nil {
				r.fail()
				spent++
			}
		}
	}
	if spent > 11+50 {
		t.Fatalf("%d guesses from 11 addresses, want ≤ 61", spent)
	}
	if th.global.Tokens >= 1 {
		t.Fatalf("global budget not spent: %v", th.global.Tokens)
	}
	// A dirty address with guesses of its own left is slowed by the
	// global budget.
	r, _ := th.reserve("198.51.100.99")
	r.fail()
	if r, wait := th.reserve("198.51.100.99"); r != nil || wait <= 0 || wait > 2*time.Second {
		t.Fatalf("dirty address under an empty global budget: %v, wait %v", r, wait)
	}
	// One guess per 2 s keeps the global budget empty, yet a clean
	// address always gets its guess, and a right one leaves it clean.
	for i := range 20 {
		clock.Advance(2 * time.Second)
		if r, _ := th.reserve(fmt.Sprintf("198.51.100.%d", 200+i)); r != nil {
			r.fail()
		}
		adm, wait := th.reserve("203.0.113.9")
		if adm == nil {
			t.Fatalf("round %d: clean address refused, wait %v", i, wait)
		}
		adm.refund()
	}
	// An admin who mistyped once waits until the bucket is full again
	// (one minute), then is clean again.
	adm, _ := th.reserve("203.0.113.9")
	adm.fail()
	clock.Advance(time.Second)
	if r, _ := th.reserve("203.0.113.9"); r != nil {
		t.Fatal("an address that just failed passes an empty global budget")
	}
	clock.Advance(time.Minute)
	for i := range 50 { // keep the global budget empty meanwhile
		if r, _ := th.reserve(fmt.Sprintf("198.51.101.%d", i)); r != nil {
			r.fail()
		}
	}
	if r, _ := th.reserve("203.0.113.9"); r == nil {
		t.Fatal("address not clean again a minute after one failure")
	}
}

// TestThrottleAddressTable: a scan from more addresses than the table
// holds cannot grow it, and then counts new addresses as not clean.
func TestThrottleAddressTable(t *testing.T) {
	clock := newFakeClock()
	th := newThrottle(clock.Now, "", nil)
	th.maxAddrs = 100
	for i := range 100 {
		r, _ := th.reserve(fmt.Sprintf("10.0.0.%d", i))
		r.fail()
	}
	th.global.Tokens = 0
	if r, _ := th.reserve("10.0.1.1"); r != nil {
		t.Fatal("new address beyond a full table passed an empty global budget")
	}
	if len(th.addrs) > 100 {
		t.Fatalf("table grew to %d", len(th.addrs))
	}
	// Once the old entries have refilled they are forgotten and new
	// addresses are clean again.
	clock.Advance(10 * time.Minute)
	th.global.Tokens = 0
	if r, _ := th.reserve("10.0.1.1"); r == nil {
		t.Fatal("new address refused after the table emptied")
	}
}

// TestHashGate: one password hash at a time; the rest are told at once,
// never queued.
func TestHashGate(t *testing.T) {
	th := newThrottle(time.Now, "", nil)
	if !th.acquireHash() {
		t.Fatal("hash slot refused")
	}
	start := time.Now()
	if th.acquireHash() {
		t.Fatal("second concurrent hash allowed")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("a busy gate took %v to answer", d)
	}
	th.releaseHash()
	if !th.acquireHash() {
		t.Fatal("slot not freed")
	}
}

// TestThrottlePersisted: an address that ran out of guesses is still
// throttled after a restart; writes are bounded (five in a row, then one a
// minute; other changes every ten minutes); a password change lifts every
// throttle.
func TestThrottlePersisted(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	path := filepath.Join(dir, ThrottleFile)
	th := newThrottle(clock.Now, dir, testLogger(t))
	exhaust := func(th *throttle, addr string) {
		for range 5 {
			if r, _ := th.reserve(addr); r != nil {
				r.fail()
			}
		}
	}
	// guesses counts what a restarted daemon would give addr; it saves
	// nothing itself.
	guesses := func(addr string) int {
		th := newThrottle(clock.Now, dir, testLogger(t))
		th.path = ""
		n := 0
		for range 6 {
			r, _ := th.reserve(addr)
			if r == nil {
				break
			}
			r.fail()
			n++
		}
		return n
	}
	for range 4 {
		r, _ := th.reserve("192.0.2.1")
		r.fail()
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("state saved before any address was throttled: %v", err)
	}
	r, _ := th.reserve("192.0.2.1")
	r.fail()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("throttled address not saved: %v", err)
	}
	// Four more throttled addresses are saved at once; the sixth write
	// in a row waits for the minute.
	for i := range 5 {
		exhaust(th, fmt.Sprintf("192.0.2.%d", 10+i))
	}
	if n := guesses("192.0.2.1"); n != 0 {
		t.Fatalf("a restart handed a throttled address %d fresh guesses", n)
	}
	if n := guesses("192.0.2.13"); n != 0 {
		t.Fatalf("5th throttled address: %d guesses after restart", n)
	}
	if n := guesses("192.0.2.14"); n != 5 {
		t.Fatalf("6th write in a row was not held back: %d guesses", n)
	}
	if n := guesses("192.0.2.200"); n != 5 {
		t.Fatalf("a clean address got %d guesses after restart", n)
	}
	clock.Advance(61 * time.Second)
	r, _ = th.reserve("192.0.2.30")
	r.fail() // any failure saves what waits
	if n := guesses("192.0.2.14"); n != 1 {
		t.Fatalf("held-back address after the minute: %d guesses, want the 1 regained", n)
	}

	// The global budget running dry is saved lazily: not within ten
	// minutes of the last save.
	st1, _ := os.Stat(path)
	for i := range 60 {
		if r, _ := th.reserve(fmt.Sprintf("198.51.100.%d", i)); r != nil {
			r.fail()
		}
	}
	if th.global.Tokens >= 1 {
		t.Fatal("global budget not drained")
	}
	if st2, _ := os.Stat(path); !os.SameFile(st1, st2) {
		t.Fatal("global budget saved within ten minutes of the last save")
	}
	clock.Advance(lazyEvery)
	th.global.Tokens = 0
	th.pending = true
	r, _ = th.reserve("198.51.100.200")
	r.fail()
	if st2, _ := os.Stat(path); os.SameFile(st1, st2) {
		t.Fatal("global budget not saved after ten minutes")
	}

	// `mohd passwd` lifts every throttle, and that is saved.
	exhaust(th, "192.0.2.40")
	th.reset()
	if r, _ := th.reserve("192.0.2.40"); r == nil {
		t.Fatal("reset did not lift the throttle")
	}
	if n := guesses("192.0.2.40"); n != 5 {
		t.Fatalf("reset was not saved: %d guesses", n)
	}

	// A damaged file empties the global budget: addresses that failed
	// wait, clean ones do not.
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	th5 := newThrottle(clock.Now, dir, testLogger(t))
	if r, _ := th5.reserve("192.0.2.50"); r == nil {
		t.Fatal("clean address refused with a damaged state file")
	} else {
		r.fail()
	}
	if r, _ := th5.reserve("192.0.2.50"); r != nil {
		t.Fatal("damaged state file handed out the global budget")
	}
}

// TestThrottleFlushedAtShutdown: what the write budget held back is saved
// when the server stops, so a graceful restart gives no fresh guesses.
func TestThrottleFlushedAtShutdown(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	th := newThrottle(clock.Now, dir, testLogger(t))
	// Six addresses throttled in a row: the sixth save waits for the
	// write budget.
	for i := range 6 {
		for range 5 {
			if r, _ := th.reserve(fmt.Sprintf("192.0.2.%d", i)); r != nil {
				r.fail()
			}
		}
	}
	guesses := func() int {
		th := newThrottle(clock.Now, dir, testLogger(t))
		th.path = ""
		n := 0
		for range 6 {
			r, _ := th.reserve("192.0.2.5")
			if r == nil {
				break
			}
			r.fail()
			n++
		}
		return n
	}
	if n := guesses(); n != 5 {
		t.Fatalf("the held-back address was saved already (%d guesses): the test proves nothing", n)
	}
	th.flush()
	if n := guesses(); n != 0 {
		t.Fatalf("after flush a restart hands the throttled address %d guesses", n)
	}
}

// TestSecurityEventLimiter: a flood from many addresses cannot flush the
// event log: per address one event per window, at most secBurst of them
// plus one an hour, and one summary an hour for the rest.
func TestSecurityEventLimiter(t *testing.T) {
	clock := newFakeClock()
	th := newThrottle(clock.Now, "", nil)
	events, summaries, logged := 0, 0, 0
	count := func(v secVerdict) {
		if v.event {
			events++
		}
		if v.summary != "" {
			summaries++
		}
		if v.log {
			logged++
		}
	}
	// The same address again and again: one event.
	for range 100 {
		count(th.securityEvent("throttled", "192.0.2.1"))
	}
	if events != 1 || logged != 1 {
		t.Fatalf("one address: %d events, %d log lines, want 1 and 1", events, logged)
	}
	// 24 hours of a flood from a new address every second.
	for i := range 24 * 3600 {
		clock.Advance(time.Second)
		count(th.securityEvent("failed", fmt.Sprintf("a%d", i)))
	}
	total := events + summaries
	if total > secBurst+2*24+2 {
		t.Fatalf("a day's flood made %d events (%d per address, %d summaries)", total, events, summaries)
	}
	if summaries < 23 {
		t.Fatalf("only %d summaries in a day's flood", summaries)
	}
	if len(th.events.seen) > secMaxSeen {
		t.Fatalf("seen table grew to %d", len(th.events.seen))
	}
}

// TestHashGateRequests: with the hash slot taken (a login flood being
// checked), a login and a first-run setup are refused at once with 429 and
// Retry-After, their guesses given back; API tokens do not go through the
// gate and keep working.
func TestHashGateRequests(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{clock: clock, opts: func(o *Options) { setCheapPassword(t, o.DataDir, testPW) }})
	h := e.srv.Handler()
	tok, _, err := CreateToken(e.dir, "read", "monitor")
	if err != nil {
		t.Fatal(err)
	}
	for !e.srv.throttle.acquireHash() {
	}
	for i := range 20 {
		start := time.Now()
		w := postLogin(h, "192.0.2.1", testPW)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "busy") {
			t.Fatalf("login %d with the hash slot taken: %d, Retry-After %q", i, w.Code, w.Header().Get("Retry-After"))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("busy answer took %v", d)
		}
		if resp, body := e.do(nil, "GET", "/api/v1/status", nil, bearer(tok)); resp.StatusCode != 200 {
			t.Fatalf("token during the flood: %d %s", resp.StatusCode, body)
		}
	}
	e.srv.throttle.releaseHash()
	// The 20 refused attempts were never checked: all 5 guesses remain.
	for i := range 5 {
		if w := postLogin(h, "192.0.2.1", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d after busy refusals: %d", i, w.Code)
		}
	}

	// The setup page hashes the new password: the same gate.
	e2 := newEnv(t, envOpts{clock: clock})
	code := e2.srv.SetupCode()
	for !e2.srv.throttle.acquireHash() {
	}
	const ftok = "0123456789abcdef0123456789abcdef0123456789a"
	setup := func() *httptest.ResponseRecorder {
		f := url.Values{"code": {code}, "password": {testPW}, "confirm": {testPW}, "csrf": {ftok}}
		r := httptest.NewRequest("POST", "/setup", strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.AddCookie(&http.Cookie{Name: preCookie, Value: ftok})
		r.RemoteAddr = "192.0.2.9:40000"
		w := httptest.NewRecorder()
		e2.srv.Handler().ServeHTTP(w, r)
		return w
	}
	if w := setup(); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("setup with the hash slot taken: %d", w.Code)
	}
	if set, _ := PasswordSet(e2.dir); set {
		t.Fatal("password stored while the gate was full")
	}
	e2.srv.throttle.releaseHash()
	if w := setup(); w.Code != http.StatusSeeOther {
		t.Fatalf("setup after the gate freed: %d %s", w.Code, w.Body)
	}
}

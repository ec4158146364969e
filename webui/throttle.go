package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mohproject/moh/internal/atomicfile"
)

// ThrottleFile is the name, inside the data dir, of the login throttle's
// saved state: the addresses that used up their guesses, so a restart does
// not hand them fresh ones.
const ThrottleFile = "login-throttle.json"

// throttle limits password and setup-code guesses and the memory spent
// checking them.
//
//   - A token bucket per client address (5 guesses, one more a minute).
//   - A global bucket (50, one more every 2 s), so many addresses together
//     cannot guess fast either. It slows only addresses that have failed
//     before: an address with a full bucket (a clean one) is never refused
//     for the global budget, so a flood from other addresses cannot lock the
//     admin out.
//   - A guess is reserved (counted) before its password is hashed and given
//     back only if it was right, so concurrent requests cannot all pass the
//     check before any of them is counted.
//   - One argon2id hash at a time (19 MiB; hashSlots): the memory for
//     checking passwords is a fixed budget, and requests beyond it are
//     refused at once rather than queued. One slot, not two, because two
//     live hashes double the garbage collector's heap goal as well: a
//     300-connection flood peaked at 88–94 MB RSS with two and 64–82 MB
//     with one. A hash takes tens of milliseconds, so one slot still
//     checks far more logins than the throttle lets through.
//   - An address running out of guesses is saved to ThrottleFile at once
//     (at most five writes in a row, then one a minute), other changes
//     (the global bucket running dry, an address throttled again) at most
//     every ten minutes, and a plain failed attempt never: flash sees a few
//     writes during a flood and none otherwise.
//
// The save budget and the event budget are rate.Limiters. The login
// buckets are not: a guess is given back after its password was hashed,
// which rate.Limiter cannot express (Reservation.CancelAt does nothing
// once the reservation's time has passed, and giving tokens back with a
// negative n is undocumented, golang/go#54082), nor can a limiter be set
// to the level that ThrottleFile holds.
type throttle struct {
	now func() time.Time
	log *slog.Logger

	perBurst  float64
	perRefill time.Duration // one attempt regained per this long
	allBurst  float64
	allRefill time.Duration
	maxAddrs  int

	hashSlots chan struct{}

	mu      sync.Mutex
	addrs   map[string]*bucket
	global  bucket
	urgent  bool // an address not throttled in the file ran out of guesses
	pending bool // another change worth saving happened since the last save
	savedAt time.Time
	writes  *rate.Limiter // saves allowed: writeBurst, one more per writeRefill
	force   bool          // the next save does not wait for the write budget

	path   string // "" saves nothing
	saveMu sync.Mutex

	events secLimiter
}

type bucket struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
	saved  bool      // ThrottleFile holds this address as throttled
}

// throttleState is ThrottleFile's content.
type throttleState struct {
	Global bucket             `json:"global"`
	Addrs  map[string]*bucket `json:"addrs"`
}

// maxSavedAddrs bounds ThrottleFile: the most drained addresses are kept.
const maxSavedAddrs = 2000

// Saves of ThrottleFile: a newly throttled address is saved at once while
// writes remain (writeBurst, one more each writeRefill); other changes
// wait until the last save is lazyEvery old.
const (
	writeBurst  = 5
	writeRefill = time.Minute
	lazyEvery   = 10 * time.Minute
)

func newThrottle(now func() time.Time, dataDir string, log *slog.Logger) *throttle {
	if log == nil {
		log = slog.Default()
	}
	t := &throttle{
		now:       now,
		log:       log.With("component", "webui"),
		perBurst:  5,
		perRefill: time.Minute,
		allBurst:  50,
		allRefill: 2 * time.Second,
		maxAddrs:  10000,
		hashSlots: make(chan struct{}, 1),
		addrs:     map[string]*bucket{},
		writes:    rate.NewLimiter(rate.Every(writeRefill), writeBurst),
		events:    newSecLimiter(),
	}
	if dataDir != "" {
		t.path = filepath.Join(dataDir, ThrottleFile)
		t.load()
	}
	return t
}

// load restores the saved state. A file that cannot be read starts the
// global bucket empty: an attacker who could break the file must not gain
// fresh guesses by it, and clean addresses do not depend on that bucket.
func (t *throttle) load() {
	b, err := os.ReadFile(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var st throttleState
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	now := t.now()
	if err != nil {
		t.log.Warn("login throttle state unreadable: starting with the global login budget empty", "file", t.path, "err", err)
		t.global = bucket{Tokens: 0, At: now}
		return
	}
	// A clock that went back must not count as time waited, nor one that
	// jumps ahead later refill a bucket dated in the future twice.
	fix := func(b *bucket) {
		if b.At.IsZero() || b.At.After(now) {
			b.At = now
		}
		b.Tokens = max(b.Tokens, -t.perBurst)
	}
	if !st.Global.At.IsZero() {
		t.global = st.Global
		fix(&t.global)
		t.global.Tokens = min(t.global.Tokens, t.allBurst)
	}
	for a, b := range st.Addrs {
		if b == nil || len(t.addrs) >= maxSavedAddrs {
			continue
		}
		fix(b)
		if refill(b, now, t.perBurst, t.perRefill); b.Tokens < t.perBurst {
			b.saved = b.Tokens < 1
			t.addrs[a] = b
		}
	}
	t.savedAt = now
	if n := len(t.addrs); n > 0 {
		t.log.Info("login throttle state restored", "addresses", n)
	}
}

func refill(b *bucket, now time.Time, burst float64, every time.Duration) {
	if b.At.IsZero() {
		b.Tokens, b.At = burst, now
		return
	}
	if now.After(b.At) {
		b.Tokens = min(burst, b.Tokens+float64(now.Sub(b.At))/float64(every))
		b.At = now
	}
}

// refilled returns addr's bucket, created if new, with it and the global
// bucket refilled up to now; nil if addr is new and the table is full of
// addresses that failed recently. Callers hold t.mu.
func (t *throttle) refilled(addr string, now time.Time) *bucket {
	refill(&t.global, now, t.allBurst, t.allRefill)
	b := t.addrs[addr]
	if b == nil {
		if len(t.addrs) >= t.maxAddrs {
			t.prune(now)
		}
		if len(t.addrs) >= t.maxAddrs {
			return nil
		}
		b = &bucket{}
		t.addrs[addr] = b
	}
	refill(b, now, t.perBurst, t.perRefill)
	return b
}

// prune forgets full buckets, so a scan from many addresses cannot grow
// the table for ever. Callers hold t.mu.
func (t *throttle) prune(now time.Time) {
	for a, x := range t.addrs {
		refill(x, now, t.perBurst, t.perRefill)
		if x.Tokens >= t.perBurst {
			delete(t.addrs, a)
		}
	}
}

// reservation is one counted guess, spent unless given back.
type reservation struct {
	t      *throttle
	addr   string
	global bool // took a token from the global bucket
	done   bool
}

// reserve counts a guess from addr before it is checked. If addr may not
// guess now it returns nil and how long to wait.
func (t *throttle) reserve(addr string) (*reservation, time.Duration) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refilled(addr, now)
	if b != nil && b.Tokens < 1 {
		return nil, time.Duration((1 - b.Tokens) * float64(t.perRefill))
	}
	// A clean address (nothing failed lately) is never refused for the
	// global budget, though it spends from it while it can. When the
	// address table is full, a new address counts as not clean.
	clean := b != nil && b.Tokens >= t.perBurst
	r := &reservation{t: t, addr: addr}
	if t.global.Tokens >= 1 {
		t.global.Tokens--
		r.global = true
		if t.global.Tokens < 1 {
			t.pending = true
		}
	} else if !clean {
		return nil, time.Duration((1 - t.global.Tokens) * float64(t.allRefill))
	}
	if b != nil {
		b.Tokens--
	}
	return r, 0
}

// refund gives the guess back: it was right, or it was never checked.
func (r *reservation) refund() {
	if r == nil || r.done {
		return
	}
	r.done = true
	t := r.t
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.refilled(r.addr, now); b != nil {
		b.Tokens = min(t.perBurst, b.Tokens+1)
	}
	if r.global {
		t.global.Tokens = min(t.allBurst, t.global.Tokens+1)
	}
}

// fail keeps the guess spent: it was wrong. It saves the state when the
// address has no guesses left.
func (r *reservation) fail() {
	if r == nil || r.done {
		return
	}
	r.done = true
	t := r.t
	t.mu.Lock()
	if b := t.addrs[r.addr]; b != nil && b.Tokens < 1 {
		if b.saved {
			t.pending = true
		} else {
			t.urgent = true
		}
	}
	t.mu.Unlock()
	t.maybeSave()
}

// acquireHash takes one of the password-hash slots, or reports that all
// are busy. The caller calls releaseHash when its hash is done.
func (t *throttle) acquireHash() bool {
	select {
	case t.hashSlots <- struct{}{}:
		return true
	default:
		return false
	}
}

// releaseHash collects the finished hash's memory, then frees the slot.
// Left to the collector's own pace, dead 19 MiB hash buffers pile up (the
// heap goal is twice the live heap, and a live hash doubles that), and
// collecting after the slot is free lets the next hash allocate before
// the last one is gone: either way a login flood would grow the daemon by
// tens of megabytes. Hashes are few (the throttle and the slots bound
// them), so a collection each is cheap (a few ms).
func (t *throttle) releaseHash() {
	runtime.GC()
	<-t.hashSlots
}

// reset forgets every address and refills the global bucket: the admin
// set a new password, so guesses against the old one no longer matter,
// and an admin locked out behind a shared address gets back in.
func (t *throttle) reset() {
	t.mu.Lock()
	t.addrs = map[string]*bucket{}
	t.global = bucket{}
	t.urgent = true
	t.force = true // the admin's reset is saved even mid-flood
	t.mu.Unlock()
	t.maybeSave()
}

// maybeSave writes the state if a newly throttled address waits to be
// saved and a write is allowed, or another change waits and the last save
// is lazyEvery old. A save under way is not waited for: the request goes
// on and the next one saves.
func (t *throttle) maybeSave() {
	if t.path == "" {
		return
	}
	now := t.now()
	t.mu.Lock()
	due := (t.urgent || (t.pending && now.Sub(t.savedAt) >= lazyEvery)) && (t.force || t.writes.TokensAt(now) >= 1)
	if !due || !t.saveMu.TryLock() {
		t.mu.Unlock()
		return
	}
	defer t.saveMu.Unlock()
	st := t.snapshot(now)
	t.urgent, t.pending, t.force = false, false, false
	t.savedAt = now
	t.writes.AllowN(now, 1) // a forced save spends a write only if one is left
	t.mu.Unlock()

	b, err := json.Marshal(st)
	if err == nil {
		err = atomicfile.WriteFile(t.path, b, 0o600)
	}
	if err != nil {
		t.log.Warn("save login throttle state", "err", err)
		t.mu.Lock()
		t.pending = true
		t.mu.Unlock()
	}
}

// flush saves whatever waits to be saved, whatever the write budget: at
// shutdown, so that a graceful restart (systemd, an update) does not hand
// a throttled address the guesses it spent since the last save.
func (t *throttle) flush() {
	t.mu.Lock()
	if t.pending {
		t.urgent = true
	}
	t.force = t.urgent
	t.mu.Unlock()
	t.maybeSave()
}

// snapshot copies the buckets worth saving: not full, most drained
// first, at most maxSavedAddrs. Callers hold t.mu.
func (t *throttle) snapshot(now time.Time) throttleState {
	refill(&t.global, now, t.allBurst, t.allRefill)
	type kv struct {
		addr string
		b    *bucket
	}
	var list []kv
	for a, b := range t.addrs {
		refill(b, now, t.perBurst, t.perRefill)
		b.saved = false
		if b.Tokens < t.perBurst {
			list = append(list, kv{a, b})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].b.Tokens < list[j].b.Tokens })
	st := throttleState{Global: t.global, Addrs: map[string]*bucket{}}
	for i, x := range list {
		if i == maxSavedAddrs {
			break
		}
		x.b.saved = x.b.Tokens < 1
		c := *x.b
		st.Addrs[x.addr] = &c
	}
	return st
}

// secLimiter keeps attacker-driven security events (failed logins,
// throttled addresses) from flushing the 200-entry event log: one event
// per kind and address per window, at most secBurst of those plus one
// more an hour, and beyond that a single summary an hour that counts what
// was left out. The log gets the per-address events whatever the budget.
type secLimiter struct {
	seen       map[string]time.Time
	budget     *rate.Limiter
	suppressed int
	since      time.Time
	summaryAt  time.Time
}

const (
	secWindow  = 10 * time.Minute
	secBurst   = 10
	secRefill  = time.Hour
	secMaxSeen = 4096
)

func newSecLimiter() secLimiter {
	return secLimiter{seen: map[string]time.Time{}, budget: rate.NewLimiter(rate.Every(secRefill), secBurst)}
}

// secVerdict says what to do with one attacker-driven security event.
type secVerdict struct {
	log     bool   // first of its kind for this address in the window
	event   bool   // and the event log has room for it
	summary string // a summary event to add first, if not ""
}

// securityEvent rates one event of kind from addr at now.
func (t *throttle) securityEvent(kind, addr string) secVerdict {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	l := &t.events
	key := kind + " " + addr
	var v secVerdict
	if at, ok := l.seen[key]; ok && now.Sub(at) < secWindow {
		l.count(now)
	} else {
		if len(l.seen) >= secMaxSeen {
			for k, at := range l.seen {
				if now.Sub(at) >= secWindow {
					delete(l.seen, k)
				}
			}
		}
		if len(l.seen) < secMaxSeen {
			l.seen[key] = now
			v.log = true
		}
		if v.log && l.budget.AllowN(now, 1) {
			v.event = true
		} else {
			l.count(now)
		}
	}
	if l.suppressed > 0 && (l.summaryAt.IsZero() || now.Sub(l.summaryAt) >= secRefill) {
		v.summary = fmt.Sprintf("login flood: %d more failed or throttled login attempts since %s, not listed one by one (see the log)",
			l.suppressed, l.since.Format(time.RFC3339))
		l.suppressed = 0
		l.summaryAt = now
	}
	return v
}

func (l *secLimiter) count(now time.Time) {
	if l.suppressed == 0 {
		l.since = now
	}
	l.suppressed++
}

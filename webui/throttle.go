package webui

import (
	"sync"
	"time"
)

// throttle limits password and setup-code guesses: a token bucket per
// client address, and a global bucket so that many addresses together
// cannot guess fast either. Only failures spend tokens; a correct
// password from a throttled address still waits.
type throttle struct {
	now func() time.Time

	perBurst  float64
	perRefill time.Duration // one attempt regained per this long
	allBurst  float64
	allRefill time.Duration

	mu     sync.Mutex
	addrs  map[string]*bucket
	global bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{
		now:       now,
		perBurst:  5,
		perRefill: time.Minute,
		allBurst:  50,
		allRefill: 2 * time.Second,
		addrs:     map[string]*bucket{},
	}
}

func refill(b *bucket, now time.Time, burst float64, every time.Duration) {
	if b.at.IsZero() {
		b.tokens, b.at = burst, now
		return
	}
	b.tokens = min(burst, b.tokens+float64(now.Sub(b.at))/float64(every))
	b.at = now
}

// refilled returns addr's bucket, created if new, with it and the global
// bucket refilled up to now. Callers hold t.mu.
func (t *throttle) refilled(addr string, now time.Time) *bucket {
	b := t.addrs[addr]
	if b == nil {
		b = &bucket{}
		t.addrs[addr] = b
	}
	refill(b, now, t.perBurst, t.perRefill)
	refill(&t.global, now, t.allBurst, t.allRefill)
	return b
}

// allow reports whether addr may try now, and if not, how long to wait.
func (t *throttle) allow(addr string) (bool, time.Duration) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refilled(addr, now)
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(t.perRefill))
	}
	if t.global.tokens < 1 {
		return false, time.Duration((1 - t.global.tokens) * float64(t.allRefill))
	}
	return true, 0
}

// fail spends one attempt of addr's and of the global bucket.
func (t *throttle) fail(addr string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refilled(addr, now)
	b.tokens--
	t.global.tokens--
	// Forget full buckets so a scan from many addresses cannot grow the
	// map for ever.
	if len(t.addrs) > 10000 {
		for a, x := range t.addrs {
			refill(x, now, t.perBurst, t.perRefill)
			if x.tokens >= t.perBurst {
				delete(t.addrs, a)
			}
		}
	}
}

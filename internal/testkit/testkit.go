// Package testkit is the set-up moh's tests share, written once: free
// loopback ports, polling until a condition holds, a log buffer a
// process writes while the test reads it, a settable clock, a child
// process the test owns, the real mohd built once and started on a free
// port, and test tracks made by the real sox and lame. The mosquitto
// broker and its CA are in fleet/fleettest, rsyslog in
// internal/logfwd/logfwdtest; this package imports neither.
package testkit

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// FreePort is a loopback TCP port that was free a moment ago: the
// programs under test take a port number, not a listener.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// MustFreePort is FreePort for a test: a failure ends it.
func MustFreePort(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreeAddr is "127.0.0.1:port" of a free port; a failure ends the test.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(MustFreePort(t))
}

// WaitFor polls cond every tick until it holds; if d passes first the
// test fails with what it was waiting for. It must be called from the
// test's own goroutine (it may call t.Fatalf).
func WaitFor(t testing.TB, d, tick time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(tick)
	}
}

// LockedBuffer is a child's output: exec's copier goroutine writes it
// while a failing test reads it, so a plain bytes.Buffer would race.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Reset forgets what was written (a restarted program's log starts
// empty).
func (l *LockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// Clock is a settable clock for code that takes a `func() time.Time`:
// expiry and throttling tests move time on instead of sleeping.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock is a Clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Go runs run (a part's Run method) in a goroutine until the test ends,
// then cancels its context and waits for it to return, so no part
// outlives its test and writes into a removed temp dir. What Run
// returns is not looked at: a test that cares keeps its own goroutine.
func Go(t testing.TB, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

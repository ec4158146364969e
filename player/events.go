package player

import (
	"sync"
	"time"
)

// Event is one thing worth telling the admin: a fault, a recovery, a
// skipped track, an admin action.
type Event struct {
	Time    time.Time  `json:"time"`
	Kind    string     `json:"kind"`            // fault, recovered, skip, admin, sink
	Fault   FaultClass `json:"fault,omitempty"` // e.g. "stalled", "mpd-exited"
	Rung    string     `json:"rung,omitempty"`  // ladder rung used
	Message string     `json:"message"`
	// RecoveryMS is the time from detection to audio flowing again, on
	// "recovered" events.
	RecoveryMS int64 `json:"recovery_ms,omitempty"`
}

// EventLog keeps the most recent events in memory (never on disk: steady
// operation writes nothing to flash).
type EventLog struct {
	mu   sync.Mutex
	buf  []Event
	next int
	full bool
	now  func() time.Time
	// subs hear every event as it is added (the syslog forwarder, the
	// fleet link); each must return at once.
	subs []func(Event)
}

// Subscribe calls f with every event added from now on. f runs in the
// adder's goroutine, after the log's lock is released, so it must only
// queue the event, never wait for a network.
func (l *EventLog) Subscribe(f func(Event)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, f)
}

// NewEventLog keeps the last size events.
func NewEventLog(size int, now func() time.Time) *EventLog {
	if size < 1 {
		size = 1
	}
	if now == nil {
		now = time.Now
	}
	return &EventLog{buf: make([]Event, size), now: now}
}

// Add records e, stamping it with the current time if it has none.
func (l *EventLog) Add(e Event) {
	l.mu.Lock()
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	l.buf[l.next] = e
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
	subs := l.subs
	l.mu.Unlock()
	for _, f := range subs {
		f(e)
	}
}

// Recent returns up to n events, newest first.
func (l *EventLog) Recent(n int) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := l.next
	if l.full {
		count = len(l.buf)
	}
	if n <= 0 || n > count {
		n = count
	}
	out := make([]Event, 0, n)
	for i := 0; i < n; i++ {
		idx := (l.next - 1 - i + len(l.buf)) % len(l.buf)
		out = append(out, l.buf[idx])
	}
	return out
}

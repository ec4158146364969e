package player

import (
	"testing"
	"time"
)

// TestEventLogSubscribe: a subscriber hears every event added after it
// subscribed, stamped, and may read the log from its callback (it runs
// outside the log's lock).
func TestEventLogSubscribe(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := NewEventLog(2, func() time.Time { return now })
	l.Add(Event{Kind: "admin", Message: "before"})
	var got []Event
	l.Subscribe(func(e Event) {
		got = append(got, e)
		_ = l.Recent(1) // would deadlock if called under the lock
	})
	for _, m := range []string{"a", "b", "c"} {
		l.Add(Event{Kind: "admin", Message: m})
	}
	if len(got) != 3 || got[0].Message != "a" || got[2].Message != "c" || !got[0].Time.Equal(now) {
		t.Fatalf("subscriber heard %+v", got)
	}
}

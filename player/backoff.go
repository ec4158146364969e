package player

import "time"

// backoff is a wait that doubles with each failure in a row, from min up
// to max, so a broken part is retried promptly at first and then rarely,
// never in a busy loop. The watchdog paces its rungs with one, the direct
// backend its sink reopens and its retries of an unplayable playlist.
type backoff struct {
	min, max time.Duration
	cur      time.Duration // the wait handed out last; 0 since reset
}

// next returns the wait before the next attempt: min after a reset, then
// twice the last one, at most max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = min(b.min, b.max)
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

// current is the wait handed out last, 0 when not backing off.
func (b *backoff) current() time.Duration { return b.cur }

// reset starts over from min: the part worked again.
func (b *backoff) reset() { b.cur = 0 }

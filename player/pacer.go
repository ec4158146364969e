package player

import (
	"context"
	"time"
)

// Clock is the time source of a Pacer. Tests inject a fake one so pacing
// can be checked exactly without waiting.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock (monotonic readings, so clock steps by NTP
// do not disturb pacing).
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Bytes per second of the PCM format every sink takes.
const pcmByteRate = SampleRate * BytesPerFrame

// Pacing defaults: how far the writer may run ahead of the virtual sound
// card, and how late it may fall before the pacer forgets the past
// instead of letting it burst to catch up. 300 ms ahead, like ALSA's
// 200 ms buffer plus the pipe to aplay: with 100 ms, a 2-core box with both
// cores saturated let scheduling delays of 130-350 ms through as
// underruns (TestPlaybackUnderContention).
const (
	DefaultPacerAhead  = 300 * time.Millisecond
	DefaultPacerResync = 250 * time.Millisecond
)

// Pacer makes a sink that has no clock of its own (a file, a FIFO, the
// null sink) consume PCM in real time, like a sound card does.
//
// Deadlines are computed from an anchor time plus the number of bytes
// written since, never by summing sleeps, so oversleeping on one call is
// repaid on the next and nothing drifts over hours. When the writer falls
// further behind than Resync (the player was stopped, the box was
// suspended, the decoder stalled) the pacer re-anchors at the current time
// rather than releasing a burst of audio to catch up.
//
// A Pacer is used by one writer goroutine.
type Pacer struct {
	clock  Clock
	ahead  time.Duration
	resync time.Duration

	anchored bool
	start    time.Time // when byte 0 after the anchor is played
	bytes    int64     // bytes written since start; kept below one second's worth
	resyncs  int
	// timer is reused by every Wait on the real clock: a new timer per
	// chunk was the audio path's only steady allocation.
	timer *time.Timer
}

// NewPacer returns a Pacer on clock (nil: RealClock) that lets the writer
// run at most ahead in front of real time and re-anchors after falling
// more than resync behind. Zero durations take the defaults.
func NewPacer(clock Clock, ahead, resync time.Duration) *Pacer {
	if clock == nil {
		clock = RealClock{}
	}
	if ahead <= 0 {
		ahead = DefaultPacerAhead
	}
	if resync <= 0 {
		resync = DefaultPacerResync
	}
	return &Pacer{clock: clock, ahead: ahead, resync: resync}
}

// Ahead is how far the writer may run in front of real time.
func (p *Pacer) Ahead() time.Duration { return p.ahead }

// Resyncs counts how often the pacer re-anchored after a stall.
func (p *Pacer) Resyncs() int { return p.resyncs }

// Reset forgets the past: the next Wait starts a new timeline, as a sound
// card does after it was stopped.
func (p *Pacer) Reset() { p.anchored = false }

// Wait blocks until n more bytes may be written: until the audio already
// written plus these n bytes reaches no further than Ahead past now. Call
// it before writing each chunk; chunks should be shorter than Ahead or the
// writer will idle for a moment at the start.
func (p *Pacer) Wait(ctx context.Context, n int) error {
	if n < 0 {
		n = 0
	}
	now := p.clock.Now()
	if !p.anchored {
		p.anchored = true
		p.start = now
		p.bytes = 0
	}
	// The end of the audio written so far, in real time: if it lies well
	// in the past the consumer has been starved for a while.
	if now.Sub(p.playedAt(p.bytes)) > p.resync {
		p.start = now
		p.bytes = 0
		p.resyncs++
	}
	p.bytes += int64(n)
	deadline := p.playedAt(p.bytes).Add(-p.ahead)
	p.fold()
	if d := deadline.Sub(now); d > 0 {
		return p.sleep(ctx, d)
	}
	return ctx.Err()
}

// sleep is clock.Sleep, with one timer for all the waits on the real
// clock.
func (p *Pacer) sleep(ctx context.Context, d time.Duration) error {
	if _, real := p.clock.(RealClock); !real {
		return p.clock.Sleep(ctx, d)
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d) // Go 1.23 timers: no stale tick survives a Reset
	}
	select {
	case <-p.timer.C:
		return nil
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	}
}

// playedAt is the real time at which the byte at offset b since the anchor
// is played. Exact to the nanosecond for any b below a few years of audio.
func (p *Pacer) playedAt(b int64) time.Time {
	secs := b / pcmByteRate
	rem := b % pcmByteRate
	return p.start.Add(time.Duration(secs)*time.Second + time.Duration(rem*int64(time.Second)/pcmByteRate))
}

// fold moves whole seconds from the byte count into the anchor, which is
// exact, so the counter stays small however long the sink runs.
func (p *Pacer) fold() {
	if secs := p.bytes / pcmByteRate; secs > 0 {
		p.start = p.start.Add(time.Duration(secs) * time.Second)
		p.bytes -= secs * pcmByteRate
	}
}

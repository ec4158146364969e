package player

// This file is the direct backend's side of the sink: opening it (after
// the backoff of an earlier failure), noting a failure and scheduling the
// reopen, and answering the restart rung once a new sink is open.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// openSinkWithBackoff opens the sink, waiting out the backoff of an
// earlier failure first. It returns false if it did not get a sink (the
// loop then looks at its commands and comes back).
func (l *audioLoop) openSinkWithBackoff(ctx context.Context) bool {
	d := l.d
	if !l.sinkRetryAt.IsZero() && time.Now().Before(l.sinkRetryAt) {
		l.wait(ctx, l.sinkRetryAt)
		if time.Now().Before(l.sinkRetryAt) {
			return false // woken early: commands first
		}
	}
	s, err := d.openSink(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		l.sinkFailed(fmt.Errorf("sink open: %w", err))
		return false
	}
	l.sink = s
	l.sinkFrames = 0
	l.sinkRetryAt = time.Time{}
	d.mu.Lock()
	d.sink = s
	d.mu.Unlock()
	if l.lastSinkErr == "" {
		d.log.Info("audio output opened")
	} else {
		d.log.Debug("audio output reopened", "failed_attempts", l.sinkFailures)
	}
	l.answerSinkReplies(nil)
	return true
}

// sinkFailed records a sink fault and schedules the reopen.
func (l *audioLoop) sinkFailed(err error) {
	d := l.d
	l.closeSink("failed")
	if d.restarting.Load() {
		return // Recover closed it; its request reopens it at once
	}
	wait := l.sinkBackoff.next()
	l.sinkRetryAt = time.Now().Add(wait)
	l.sinkFailures++
	if msg := err.Error(); msg != l.lastSinkErr {
		d.log.Error("audio output failed; reopening", "err", err, "retry_in", wait)
		l.lastSinkErr = msg
	} else {
		// The same failure again: the journal (on flash) has it already.
		d.log.Debug("audio output failed again", "err", err, "attempt", l.sinkFailures, "retry_in", wait)
	}
	d.setState(StateFailed, Fault{Class: FaultSinkFailed, Detail: err.Error()})
	l.answerSinkReplies(err)
}

func (l *audioLoop) closeSink(why string) {
	if l.sink == nil {
		return
	}
	d := l.d
	d.mu.Lock()
	d.sink = nil
	d.mu.Unlock()
	if err := l.sink.Close(); err != nil && !errors.Is(err, ErrSinkClosed) {
		d.log.Warn("close sink", "why", why, "err", err)
	}
	l.sink = nil
}

func (l *audioLoop) answerSinkReplies(err error) {
	for _, c := range l.sinkReplies {
		c <- err
	}
	l.sinkReplies = nil
}

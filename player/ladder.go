package player

// This file is the watchdog's recovery ladder: what it does once step has
// seen a fault — record it, pick the rung the fault's class needs (see
// FaultClass.FirstRung), try it, climb after failed attempts with a
// doubling backoff, and at the top exit or reboot (reboot.go).

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// detect records a new fault.
func (w *Watchdog) detect(now time.Time, ob observation) {
	s := &w.s
	if ob.fault != s.ladderClass {
		// The ladder position belongs to one kind of trouble: a new
		// kind starts from its own first rung (the backoff still paces).
		s.rung, s.atRung, s.ladderClass = 0, 0, ob.fault
	}
	s.fault, s.faultMsg, s.faultAt = ob.fault, ob.msg, now
	s.faults++
	s.byClass[string(ob.fault)]++
	e := Event{Time: now, Kind: "fault", Fault: ob.fault, Message: ob.msg}
	s.lastFault = &e
	w.o.Events.Add(e)
	w.log.Warn("audio fault", "fault", ob.fault, "detail", ob.msg, "ladder", s.rung.String(), "backoff", s.backoff.current())
	// A fault soon after a failed or recent recovery waits out the
	// backoff, so a flapping backend cannot become a busy loop.
	s.next = now
	if s.failures > 0 && !s.lastTry.IsZero() {
		s.next = s.lastTry.Add(s.backoff.current())
	}
	w.transition(WatchdogFaulty)
}

// attemptsAt is how often rung is tried before climbing.
func (w *Watchdog) attemptsAt(r Rung) int {
	if r == RungRestartBackend {
		return w.o.RestartAttempts
	}
	return w.o.AttemptsPerRung
}

// attempt performs the next rung.
func (w *Watchdog) attempt(ctx context.Context, now time.Time, ob observation) error {
	s := &w.s
	class := s.fault
	if ob.fault != "" && ob.fault != s.fault {
		// The picture changed while handling the fault (a stall turned
		// out to be a dead process): climb to what the cause needs.
		w.log.Info("fault class changed", "from", s.fault, "to", ob.fault, "detail", ob.msg)
		s.fault, class, s.ladderClass = ob.fault, ob.fault, ob.fault
	}
	rung := max(class.FirstRung(), s.rung)
	if rung > s.rung {
		s.rung, s.atRung = rung, 0
	}
	if rung >= RungExit {
		return w.exit(now)
	}
	s.attempts++
	s.triesByRung[rung.String()]++
	s.atRung++
	s.lastTry, s.tried, s.tryFrames = now, rung, ob.st.Frames
	w.log.Info("recovery attempt", "fault", s.fault, "rung", rung.String(), "attempt", s.atRung)

	// Recover may take seconds (an MPD restart); Status and Healthy must
	// not wait for it, so the lock is released meanwhile.
	rctx, cancel := context.WithTimeout(ctx, w.o.RecoverTimeout)
	w.mu.Unlock()
	err := w.o.Backend.Recover(rctx, rung)
	w.mu.Lock()
	cancel()
	if ctx.Err() != nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrRungUnsupported):
		s.attempts--
		s.triesByRung[rung.String()]--
		s.rung, s.atRung = rung+1, 0
		s.next = w.o.Now()
		w.log.Info("rung not supported; climbing", "rung", rung.String())
	case err != nil:
		w.failedAttempt(w.o.Now(), err.Error())
	default:
		// Measure the wait for audio from the end of the rung: a restart
		// itself may take longer than VerifyAfter.
		s.lastTry = w.o.Now()
		w.transition(WatchdogVerifying)
	}
	return nil
}

// failedAttempt counts a rung that did not bring audio back and schedules
// the next one after a doubled backoff.
func (w *Watchdog) failedAttempt(now time.Time, why string) {
	s := &w.s
	s.failures++
	s.next = now.Add(s.backoff.next())
	if s.atRung >= w.attemptsAt(s.rung) {
		s.rung, s.atRung = s.rung+1, 0
	}
	w.log.Warn("recovery attempt failed", "fault", s.fault, "rung", s.tried.String(), "err", why,
		"next_rung", s.rung.String(), "backoff", s.backoff.current())
	w.transition(WatchdogFaulty)
}

// recovered records audio flowing again.
func (w *Watchdog) recovered(now time.Time, rung Rung) {
	s := &w.s
	ms := now.Sub(s.faultAt).Milliseconds()
	s.recoveries++
	name := "none"
	if rung != 0 {
		name = rung.String()
	}
	s.byRung[name]++
	s.lastRecoveryMS = ms
	w.o.Events.Add(Event{Time: now, Kind: "recovered", Fault: s.fault, Rung: name, RecoveryMS: ms,
		Message: fmt.Sprintf("audio back %d ms after %s was detected", ms, s.fault)})
	w.log.Info("audio recovered", "fault", s.fault, "rung", name, "recovery_ms", ms)
	s.fault, s.faultMsg = "", ""
	s.goodSince = now
	s.healthy = true
	w.transition(WatchdogHealthy)
}

// maybeResetLadder starts the ladder from the bottom again after a long
// enough stretch of good audio.
func (w *Watchdog) maybeResetLadder(now time.Time) {
	s := &w.s
	if (s.rung != 0 || s.failures != 0 || s.backoff.current() != 0) && now.Sub(s.goodSince) >= w.o.HealthyReset {
		w.log.Info("ladder reset after good audio", "for", w.o.HealthyReset)
		s.rung, s.atRung, s.failures = 0, 0, 0
		s.backoff.reset()
	}
}

// exit is the top of the ladder: restart mohd through the service
// manager or, if opted in and rate-limited, reboot.
func (w *Watchdog) exit(now time.Time) error {
	s := &w.s
	rung := RungExit
	if w.o.Reboot {
		if w.rebootDue(now) {
			rung = RungReboot
		}
	}
	s.attempts++
	s.triesByRung[rung.String()]++
	msg := fmt.Sprintf("%s not fixed by lower rungs (%d failed attempts)", s.fault, s.failures)
	w.o.Events.Add(Event{Time: now, Kind: "fault", Fault: s.fault, Rung: rung.String(), Message: msg})
	w.transition(WatchdogExiting)
	s.healthy = false
	if rung == RungReboot {
		w.log.Error("rebooting the box", "fault", s.fault, "failures", s.failures)
		err := w.reboot(now)
		if err == nil {
			return fmt.Errorf("%w: rebooting: %s", ErrExitRequested, msg)
		}
		w.log.Error("reboot failed; exiting instead", "err", err)
	}
	if w.o.Reboot {
		if err := w.noteExit(now); err != nil {
			w.log.Error("record exit for the reboot rung", "err", err)
		}
	}
	w.log.Error("exiting so the service manager restarts mohd", "fault", s.fault, "failures", s.failures)
	if w.o.Exit != nil {
		w.o.Exit(1)
	}
	return fmt.Errorf("%w: %s", ErrExitRequested, msg)
}

package player

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Errors of the watchdog.
var (
	// ErrExitRequested is returned (wrapped) by Watchdog.Run when the
	// ladder reached its exit rung: mohd should exit non-zero so that
	// systemd restarts it.
	ErrExitRequested = errors.New("watchdog: exit requested so the service manager restarts mohd")
	// ErrRungUnsupported is returned (wrapped) by Backend.Recover for a
	// rung the backend has no action for; the watchdog then climbs to the
	// next rung at once instead of waiting out a backoff.
	ErrRungUnsupported = errors.New("recovery rung not supported by this backend")
)

// Watchdog states, as shown in WatchdogStatus.State.
const (
	WatchdogIdle       = "idle"        // playback is not wanted: nothing to supervise
	WatchdogStarting   = "starting"    // the backend is starting (grace period)
	WatchdogHealthy    = "healthy"     // audio flows
	WatchdogFaulty     = "faulty"      // a fault is known; the next attempt waits for its backoff
	WatchdogVerifying  = "verifying"   // a rung was performed; waiting for audio to come back
	WatchdogExiting    = "exiting"     // the exit rung was reached
	watchdogStoppedRun = "not-running" // Run has not started
)

// WatchdogStatus is the watchdog's part of Status, for the API and metrics.
type WatchdogStatus struct {
	State   string `json:"state"`
	Healthy bool   `json:"healthy"`
	// Fault is the class of the fault being handled, empty when healthy.
	Fault FaultClass `json:"fault,omitempty"`
	// Rung is the ladder rung the next attempt will use (or used last).
	Rung string `json:"rung,omitempty"`
	// Backoff is the wait before the next attempt after a failed one.
	Backoff          time.Duration     `json:"backoff_ns"`
	Faults           uint64            `json:"faults"`
	Recoveries       uint64            `json:"recoveries"`
	Attempts         uint64            `json:"attempts"`
	FaultsByClass    map[string]uint64 `json:"faults_by_class"`
	RecoveriesByRung map[string]uint64 `json:"recoveries_by_rung"`
	AttemptsByRung   map[string]uint64 `json:"attempts_by_rung"`
	LastFault        *Event            `json:"last_fault,omitempty"`
	LastRecoveryMS   int64             `json:"last_recovery_ms,omitempty"`
}

// WatchdogOptions configure a Watchdog. Zero durations take the defaults
// in brackets.
type WatchdogOptions struct {
	Backend Backend
	// Wanted reports whether the admin wants playback (Player.Settings().Playing).
	Wanted func() bool
	Events *EventLog
	Logger *slog.Logger
	Now    func() time.Time

	Interval     time.Duration // how often the backend is checked [500ms]
	StallAfter   time.Duration // frames not advancing, or not playing, this long is a fault [2s]
	SilenceAfter time.Duration // output silent this long while the source is not is a fault [3s]
	HealthyReset time.Duration // this long of good audio resets the ladder [60s]
	StartGrace   time.Duration // a starting backend is left alone this long [15s]
	// VerifyAfter is how long audio may take to come back after a rung
	// before the attempt counts as failed [5s].
	VerifyAfter    time.Duration
	RecoverTimeout time.Duration // bound on one Backend.Recover call [30s]
	BackoffMin     time.Duration // first wait after a failed attempt [1s]
	BackoffMax     time.Duration // cap of the doubling waits [60s]
	// AttemptsPerRung is how often a rung is tried before climbing [2];
	// RestartAttempts the same for the restart-backend rung [5].
	AttemptsPerRung int
	RestartAttempts int

	// Reboot enables the last rung: reboot the box with RebootCommand
	// [systemctl reboot], at most once per 24 h (RebootStampPath records
	// when), and only after mohd already exited for the same trouble
	// RebootAfterExits times within an hour [3].
	Reboot           bool
	RebootCommand    []string
	RebootStampPath  string
	RebootAfterExits int
	// Exit, if set, is called with 1 at the exit rung (Run returns the
	// ErrExitRequested error as well).
	Exit func(code int)
}

// Watchdog supervises a backend: it watches progress and level, and when
// audio stops it climbs a ladder of recovery rungs with backoff. It is an
// explicit state machine driven by step, once per Interval.
type Watchdog struct {
	o   WatchdogOptions
	log *slog.Logger

	mu sync.Mutex
	s  watchState
}

// watchState is the state machine's memory.
type watchState struct {
	state   string
	healthy bool
	started time.Time // first step

	lastFrames uint64
	framesAt   time.Time // when Frames last advanced
	notPlaying time.Time // since when the backend is not playing (zero: it is)
	goodSince  time.Time // start of the current healthy stretch

	fault       FaultClass // class being handled
	faultMsg    string
	ladderClass FaultClass // the class the ladder position was reached for
	faultAt     time.Time
	rung        Rung // ladder position: the lowest rung the next attempt may use
	atRung      int  // attempts at rung since it was reached
	failures    int  // failed attempts since the last ladder reset
	backoff     backoff
	next        time.Time // earliest next attempt
	lastTry     time.Time
	tried       Rung
	tryFrames   uint64

	faults, recoveries, attempts uint64
	byClass, byRung, triesByRung map[string]uint64
	lastFault                    *Event
	lastRecoveryMS               int64
}

// NewWatchdog returns a watchdog for o.Backend; call Run.
func NewWatchdog(o WatchdogOptions) *Watchdog {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Events == nil {
		o.Events = NewEventLog(200, o.Now)
	}
	if o.Wanted == nil {
		o.Wanted = func() bool { return true }
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, 500*time.Millisecond)
	def(&o.StallAfter, 2*time.Second)
	def(&o.SilenceAfter, 3*time.Second)
	def(&o.HealthyReset, 60*time.Second)
	def(&o.StartGrace, 15*time.Second)
	def(&o.VerifyAfter, 5*time.Second)
	def(&o.RecoverTimeout, 30*time.Second)
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, 60*time.Second)
	if o.AttemptsPerRung <= 0 {
		o.AttemptsPerRung = 2
	}
	if o.RestartAttempts <= 0 {
		o.RestartAttempts = 5
	}
	if o.RebootAfterExits <= 0 {
		o.RebootAfterExits = 3
	}
	if len(o.RebootCommand) == 0 {
		o.RebootCommand = []string{"systemctl", "reboot"}
	}
	return &Watchdog{
		o:   o,
		log: o.Logger.With("component", "watchdog"),
		s: watchState{
			state:       watchdogStoppedRun,
			backoff:     backoff{min: o.BackoffMin, max: o.BackoffMax},
			byClass:     map[string]uint64{},
			byRung:      map[string]uint64{},
			triesByRung: map[string]uint64{},
		},
	}
}

// Run supervises until ctx is done. It returns nil on cancellation and
// an error wrapping ErrExitRequested when mohd should exit.
func (w *Watchdog) Run(ctx context.Context) error {
	return every(ctx, w.o.Interval, func() error { return w.step(ctx) })
}

// Status returns counters for the API.
func (w *Watchdog) Status() WatchdogStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.s
	ws := WatchdogStatus{
		State:            s.state,
		Healthy:          s.healthy,
		Fault:            s.fault,
		Backoff:          s.backoff.current(),
		Faults:           s.faults,
		Recoveries:       s.recoveries,
		Attempts:         s.attempts,
		FaultsByClass:    copyCounts(s.byClass),
		RecoveriesByRung: copyCounts(s.byRung),
		AttemptsByRung:   copyCounts(s.triesByRung),
		LastRecoveryMS:   s.lastRecoveryMS,
	}
	if s.rung != 0 {
		ws.Rung = s.rung.String()
	}
	if s.lastFault != nil {
		e := *s.lastFault
		ws.LastFault = &e
	}
	return ws
}

func copyCounts(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Healthy reports whether audio is really flowing now: playback wanted,
// frames advancing and the output not silent (unless the source is).
func (w *Watchdog) Healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.s.healthy
}

// OK reports whether there is nothing for a service manager to fix:
// audio flows, or playback is not wanted. Unlike Healthy it stays true
// while the admin has stopped playback.
func (w *Watchdog) OK() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.s.healthy || w.s.state == WatchdogIdle
}

// observation is one look at the backend.
type observation struct {
	st      BackendStatus
	wanted  bool
	flowing bool       // audio reaches the output now
	fault   FaultClass // "" when none
	msg     string
}

// observe reads the backend and classifies what it sees.
func (w *Watchdog) observe(now time.Time) observation {
	st := w.o.Backend.Status()
	ob := observation{st: st, wanted: w.o.Wanted()}
	s := &w.s
	if s.started.IsZero() {
		s.started = now
		s.framesAt = now
	}
	if st.Frames != s.lastFrames {
		s.lastFrames, s.framesAt = st.Frames, now
	}
	if st.State == StatePlaying {
		s.notPlaying = time.Time{}
	} else if s.notPlaying.IsZero() {
		s.notPlaying = now
	}
	lastAudio := st.LastAudio
	if lastAudio.Before(s.started) {
		lastAudio = s.started // audio cannot have been missed before we looked
	}
	advancing := now.Sub(s.framesAt) < w.o.StallAfter
	audible := st.SourceSilent || now.Sub(lastAudio) < w.o.SilenceAfter
	ob.flowing = st.State == StatePlaying && st.Fault.IsZero() && advancing && audible
	switch {
	case !ob.wanted:
	case !st.Fault.IsZero():
		ob.fault, ob.msg = st.Fault.Class, st.Fault.String()
		if ob.fault == "" {
			ob.fault = FaultBackend
		}
	case st.State == StateStarting && now.Sub(s.started) < w.o.StartGrace:
	case st.State == StateRecovering:
	case st.State != StatePlaying:
		if now.Sub(s.notPlaying) >= w.o.StallAfter {
			ob.fault = FaultNotPlaying
			ob.msg = fmt.Sprintf("backend is %s but playback is wanted", st.State)
		}
	case !advancing:
		ob.fault = FaultStalled
		ob.msg = fmt.Sprintf("no audio frames for %v", now.Sub(s.framesAt).Round(time.Millisecond))
	case !audible:
		ob.fault = FaultSilent
		ob.msg = fmt.Sprintf("output silent for %v (level %.0f dBFS)", now.Sub(lastAudio).Round(time.Millisecond), st.LevelDBFS)
	}
	return ob
}

// step is one turn of the state machine.
func (w *Watchdog) step(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.o.Now()
	ob := w.observe(now)
	s := &w.s
	s.healthy = ob.wanted && ob.flowing

	if !ob.wanted {
		if s.state == WatchdogFaulty || s.state == WatchdogVerifying {
			w.log.Info("playback no longer wanted; fault handling stopped", "fault", s.fault)
		}
		s.fault = ""
		w.transition(WatchdogIdle)
		return nil
	}
	if s.state == WatchdogIdle || s.state == watchdogStoppedRun {
		// (Re)starting supervision: give the backend its grace again.
		s.started, s.framesAt, s.notPlaying = now, now, time.Time{}
		w.transition(WatchdogStarting)
	}

	switch s.state {
	case WatchdogStarting, WatchdogHealthy:
		if ob.fault == "" {
			if ob.flowing {
				if s.state != WatchdogHealthy {
					s.goodSince = now
					w.transition(WatchdogHealthy)
				}
				w.maybeResetLadder(now)
			}
			return nil
		}
		w.detect(now, ob)
		fallthrough
	case WatchdogFaulty:
		if ob.flowing && ob.fault == "" {
			w.recovered(now, 0) // came back by itself
			return nil
		}
		// A new diagnosis that needs a higher rung (a stall turned out to
		// be a hung process) is acted on at once: the class set is
		// finite, so this cannot loop, and the backoff still grows.
		rediagnosed := ob.fault != "" && ob.fault != s.fault && ob.fault.FirstRung() > max(s.rung, s.fault.FirstRung())
		if now.Before(s.next) && !rediagnosed {
			return nil
		}
		return w.attempt(ctx, now, ob)
	case WatchdogVerifying:
		back := ob.flowing && s.lastFrames != s.tryFrames &&
			(ob.st.SourceSilent || !ob.st.LastAudio.Before(s.lastTry))
		if back {
			w.recovered(now, s.tried)
			return nil
		}
		if now.Sub(s.lastTry) >= w.o.VerifyAfter {
			w.failedAttempt(now, fmt.Sprintf("no audio %v after %s", w.o.VerifyAfter, s.tried))
		}
	}
	return nil
}

// transition changes state, logging only real changes.
func (w *Watchdog) transition(state string) {
	if w.s.state == state {
		return
	}
	w.log.Debug("watchdog state", "from", w.s.state, "to", state)
	w.s.state = state
}

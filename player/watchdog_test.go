package player

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// wdFakeBackend is a scripted backend for exact tests of the state machine
// (the real backends are exercised in faults_test.go).
type wdFakeBackend struct {
	mu      sync.Mutex
	st      BackendStatus
	recover func(r Rung) error // changes st under mu
	calls   []Rung
	callAt  []time.Time
	now     func() time.Time
}

func (f *wdFakeBackend) Name() string                  { return "fake" }
func (f *wdFakeBackend) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *wdFakeBackend) SetPlaylist([]Track)           {}
func (f *wdFakeBackend) Play()                         {}
func (f *wdFakeBackend) Stop()                         {}
func (f *wdFakeBackend) Next()                         {}
func (f *wdFakeBackend) SetVolume(int)                 {}
func (f *wdFakeBackend) Status() BackendStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}
func (f *wdFakeBackend) Recover(_ context.Context, r Rung) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r)
	f.callAt = append(f.callAt, f.now())
	if f.recover == nil {
		return nil
	}
	return f.recover(r)
}
func (f *wdFakeBackend) set(fn func(st *BackendStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

// wdRig drives a watchdog with a fake clock, one Interval per tick; a
// playing, fault-free fake backend produces audible frames.
type wdRig struct {
	t      *testing.T
	now    time.Time
	b      *wdFakeBackend
	w      *Watchdog
	events *EventLog
	wanted bool
	frozen bool // frames stop
	muted  bool // frames flow, silence
}

func newWDRig(t *testing.T, o WatchdogOptions) *wdRig {
	r := &wdRig{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), wanted: true}
	clock := func() time.Time { return r.now }
	r.b = &wdFakeBackend{now: clock, st: BackendStatus{State: StatePlaying}}
	r.events = NewEventLog(1000, clock)
	o.Backend, o.Now, o.Events, o.Logger = r.b, clock, r.events, wdTestLogger(t)
	o.Wanted = func() bool { return r.wanted }
	r.w = NewWatchdog(o)
	return r
}

// tick advances the clock by one interval, lets the backend play and
// runs one step; it returns the step's error.
func (r *wdRig) tick() error {
	r.now = r.now.Add(r.w.o.Interval)
	r.b.set(func(st *BackendStatus) {
		if st.State == StatePlaying && st.Fault.IsZero() && !r.frozen {
			st.Frames += uint64(r.w.o.Interval.Seconds() * SampleRate)
			if !st.SourceSilent && !r.muted {
				st.LevelDBFS = -14
				st.LastAudio = r.now
			}
		}
	})
	return r.w.step(context.Background())
}

func (r *wdRig) run(d time.Duration) error {
	for end := r.now.Add(d); r.now.Before(end); {
		if err := r.tick(); err != nil {
			return err
		}
	}
	return nil
}

func TestWatchdogHealthyAndIdle(t *testing.T) {
	r := newWDRig(t, WatchdogOptions{})
	if err := r.run(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.w.Healthy() || r.w.Status().State != WatchdogHealthy {
		t.Fatalf("playing backend: healthy=%v status=%+v", r.w.Healthy(), r.w.Status())
	}
	r.wanted = false
	r.b.set(func(st *BackendStatus) { st.State = StateStopped })
	if err := r.run(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.w.Healthy() || !r.w.OK() || r.w.Status().State != WatchdogIdle || len(r.b.calls) != 0 {
		t.Fatalf("stopped by admin: healthy=%v ok=%v state=%s calls=%v", r.w.Healthy(), r.w.OK(), r.w.Status().State, r.b.calls)
	}
}

func TestWatchdogReplaysStoppedBackend(t *testing.T) {
	r := newWDRig(t, WatchdogOptions{})
	_ = r.run(2 * time.Second)
	r.b.recover = func(rung Rung) error { r.b.st.State, r.b.st.Fault = StatePlaying, Fault{}; return nil }
	r.b.set(func(st *BackendStatus) {
		st.State, st.Fault = StateStopped, Fault{Class: FaultMPDStopped, Detail: "stopped by someone"}
	})
	_ = r.run(3 * time.Second)
	if len(r.b.calls) != 1 || r.b.calls[0] != RungReplay {
		t.Fatalf("recover calls = %v, want one replay", r.b.calls)
	}
	ws := r.w.Status()
	if !r.w.Healthy() || ws.Recoveries != 1 || ws.RecoveriesByRung["replay"] != 1 || ws.FaultsByClass["mpd-stopped"] != 1 {
		t.Fatalf("status after recovery: %+v", ws)
	}
	ev := r.events.Recent(0)
	if len(ev) != 2 || ev[0].Kind != "recovered" || ev[0].Rung != "replay" || ev[1].Kind != "fault" || ev[1].Fault != "mpd-stopped" {
		t.Fatalf("events = %+v", ev)
	}
	// Detected on the first tick, replayed at once, audio on the next.
	if ev[0].RecoveryMS <= 0 || ev[0].RecoveryMS > 1000 {
		t.Fatalf("recovery took %d ms on the fake clock, want one interval", ev[0].RecoveryMS)
	}
}

func TestWatchdogDetectsStallAndSilence(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inject    func(r *wdRig)
		wantClass FaultClass
		within    time.Duration
	}{
		{"backend-fault", func(r *wdRig) { r.b.set(func(st *BackendStatus) { st.Fault = Fault{Detail: "x"} }) }, FaultBackend, time.Second},
		{"frames-stop", func(r *wdRig) { r.frozen = true }, FaultStalled, 2500 * time.Millisecond},
		{"silent", func(r *wdRig) { r.muted = true }, FaultSilent, 3500 * time.Millisecond},
		{"not-playing", func(r *wdRig) { r.b.set(func(st *BackendStatus) { st.State = StateStopped }) }, FaultNotPlaying, 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newWDRig(t, WatchdogOptions{})
			_ = r.run(5 * time.Second)
			r.b.recover = func(Rung) error { return errors.New("still broken") }
			start := r.now
			tc.inject(r)
			for r.w.Status().Faults == 0 && r.now.Sub(start) < 10*time.Second {
				if err := r.tick(); err != nil {
					t.Fatal(err)
				}
			}
			ws := r.w.Status()
			if ws.FaultsByClass[string(tc.wantClass)] != 1 {
				t.Fatalf("faults = %v, want one %s", ws.FaultsByClass, tc.wantClass)
			}
			if took := r.now.Sub(start); took > tc.within {
				t.Fatalf("detected after %v, want within %v", took, tc.within)
			}
			if r.w.Healthy() {
				t.Fatal("healthy while faulty")
			}
		})
	}
}

func TestWatchdogSourceSilenceIsNoFault(t *testing.T) {
	r := newWDRig(t, WatchdogOptions{})
	_ = r.run(2 * time.Second)
	r.b.set(func(st *BackendStatus) { st.SourceSilent = true })
	if err := r.run(20 * time.Second); err != nil { // a silent passage
		t.Fatal(err)
	}
	if ws := r.w.Status(); ws.Faults != 0 || !ws.Healthy {
		t.Fatalf("silent source: %+v", ws)
	}
}

// A permanently broken backend: the ladder climbs with doubling backoff,
// tries each rung a bounded number of times and finally asks to exit.
func TestWatchdogLadderBackoffAndExit(t *testing.T) {
	exitCode := -1
	r := newWDRig(t, WatchdogOptions{Exit: func(c int) { exitCode = c }})
	_ = r.run(2 * time.Second)
	r.b.recover = func(Rung) error { return errors.New("mpd: exec: not found") }
	r.b.set(func(st *BackendStatus) {
		st.State, st.Fault = StateFailed, Fault{Class: FaultMPDExited, Detail: `exec: "mpd": not found`}
	})
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = r.tick()
	}
	if !errors.Is(err, ErrExitRequested) || exitCode != 1 {
		t.Fatalf("err = %v exit = %d, want ErrExitRequested and Exit(1)", err, exitCode)
	}
	// mpd-exited starts at restart-backend: 5 attempts, waits 1,2,4,8 s.
	if len(r.b.calls) != 5 {
		t.Fatalf("attempts = %v, want 5 restarts", r.b.calls)
	}
	for i, c := range r.b.calls {
		if c != RungRestartBackend {
			t.Fatalf("attempt %d used %s", i, c)
		}
	}
	for i := 1; i < len(r.b.callAt); i++ {
		gap := r.b.callAt[i].Sub(r.b.callAt[i-1])
		want := time.Second << (i - 1)
		if gap < want || gap > want+time.Second {
			t.Errorf("gap before attempt %d = %v, want ~%v", i+1, gap, want)
		}
	}
	if ws := r.w.Status(); ws.State != WatchdogExiting || ws.AttemptsByRung["exit"] != 1 {
		t.Fatalf("status = %+v", ws)
	}
}

func TestWatchdogClimbsPastUnsupportedRungs(t *testing.T) {
	r := newWDRig(t, WatchdogOptions{})
	_ = r.run(2 * time.Second)
	r.b.recover = func(rung Rung) error {
		switch rung {
		case RungClearError, RungReconnect:
			return ErrRungUnsupported
		case RungRestartBackend:
			r.b.st.State, r.b.st.Fault = StatePlaying, Fault{}
			return nil
		}
		return nil // replay "works" but does not help
	}
	r.b.set(func(st *BackendStatus) {
		st.State, st.Fault = StateFailed, Fault{Class: FaultSinkFailed, Detail: "sink open: aplay: audio open error"}
	})
	_ = r.run(30 * time.Second)
	want := []Rung{RungRestartBackend}
	if len(r.b.calls) != len(want) || r.b.calls[0] != want[0] {
		t.Fatalf("calls = %v, want %v (a sink fault starts at restart)", r.b.calls, want)
	}
	// A stopped backend that replay cannot fix: replay twice, then the
	// unsupported rungs are skipped without waiting, then restart.
	r.b.calls = nil
	r.now = r.now.Add(time.Hour)
	_ = r.run(2 * time.Minute) // ladder reset
	r.b.set(func(st *BackendStatus) { st.State, st.Fault = StateStopped, Fault{} })
	_ = r.run(60 * time.Second)
	got := r.b.calls
	if len(got) != 5 || got[0] != RungReplay || got[1] != RungReplay || got[4] != RungRestartBackend {
		t.Fatalf("calls = %v, want replay, replay, clear-error, reconnect, restart-backend", got)
	}
	if !r.w.Healthy() {
		t.Fatalf("not healthy after restart: %+v", r.w.Status())
	}
}

func TestWatchdogLadderResetsAfterGoodAudio(t *testing.T) {
	r := newWDRig(t, WatchdogOptions{HealthyReset: 10 * time.Second})
	_ = r.run(2 * time.Second)
	fails := 0
	r.b.recover = func(rung Rung) error {
		if fails < 3 {
			fails++
			return errors.New("no")
		}
		r.b.st.State, r.b.st.Fault = StatePlaying, Fault{}
		return nil
	}
	r.b.set(func(st *BackendStatus) {
		st.State, st.Fault = StateStopped, Fault{Class: FaultMPDPaused, Detail: "paused"}
	})
	for i := 0; i < 100 && r.w.Status().Recoveries == 0; i++ {
		_ = r.tick()
	}
	if ws := r.w.Status(); !ws.Healthy || ws.Rung != "clear-error" || ws.Backoff == 0 {
		t.Fatalf("after a hard recovery the ladder should still be up: %+v", ws)
	}
	_ = r.run(11 * time.Second)
	if ws := r.w.Status(); ws.Rung != "" || ws.Backoff != 0 {
		t.Fatalf("ladder not reset after good audio: %+v", ws)
	}
}

func TestWatchdogRebootRung(t *testing.T) {
	dir := t.TempDir()
	stamp := filepath.Join(dir, "last-reboot")
	marker := filepath.Join(dir, "rebooted")
	o := WatchdogOptions{
		Reboot: true, RebootStampPath: stamp, RebootAfterExits: 2,
		RebootCommand:   []string{"touch", marker},
		RestartAttempts: 1, AttemptsPerRung: 1, BackoffMax: time.Second,
	}
	broken := func(r *wdRig) error {
		_ = r.run(2 * time.Second)
		r.b.recover = func(Rung) error { return errors.New("broken") }
		r.b.set(func(st *BackendStatus) {
			st.State, st.Fault = StateFailed, Fault{Class: FaultMPDExited, Detail: "gone"}
		})
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			err = r.tick()
		}
		return err
	}
	// Two exits (two mohd lifetimes) are recorded, no reboot yet.
	var r *wdRig
	for i := range 2 {
		r = newWDRig(t, o)
		r.now = r.now.Add(time.Duration(i) * time.Minute)
		if err := broken(r); !errors.Is(err, ErrExitRequested) {
			t.Fatalf("run %d: %v", i, err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("rebooted after %d exits", i+1)
		}
	}
	// Third lifetime: lower rungs failed repeatedly → reboot, stamp written.
	r = newWDRig(t, o)
	r.now = r.now.Add(2 * time.Minute)
	if err := broken(r); !errors.Is(err, ErrExitRequested) {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no reboot after repeated exits: %v", err)
	}
	b, _ := os.ReadFile(stamp)
	if got, _ := strconv.ParseInt(string(b[:len(b)-1]), 10, 64); got != r.now.Unix() {
		t.Fatalf("stamp = %q, want %d", b, r.now.Unix())
	}
	if r.w.Status().AttemptsByRung["reboot"] != 1 {
		t.Fatalf("status: %+v", r.w.Status())
	}
	// Within 24 h: never again, whatever the exits.
	_ = os.Remove(marker)
	for i := range 4 {
		r = newWDRig(t, o)
		r.now = r.now.Add(time.Duration(3+i) * time.Hour)
		if err := broken(r); !errors.Is(err, ErrExitRequested) {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("rebooted twice within 24 h")
	}
}

package player

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Fault injection against a real MPD (and, at the end, the direct
// backend with a real aplay): each case measures the time from injection
// to detection and to audio flowing again. Targets are detection ≤ 3 s
// and audio back ≤ 5 s; the tests assert a generous 15 s and log the
// measured times (BenchmarkRecovery prints them too).

const recoveryBound = 15 * time.Second

// skipShort: the TestSlow* tests (10–25 s each, measured over wall-clock
// windows) run in every full `go test` and so in `make test`; only an
// explicit -short leaves them out of a quick edit-test loop.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("slow test; runs without -short (make test)")
	}
}

// supervised is a backend under a watchdog, both running.
type supervised struct {
	b      Backend
	w      *Watchdog
	events *EventLog
	cancel context.CancelFunc
	done   chan error
}

func superviseBackend(t testing.TB, b Backend, o WatchdogOptions) *supervised {
	t.Helper()
	s := &supervised{b: b, events: NewEventLog(500, nil), done: make(chan error, 1)}
	o.Backend, o.Events = b, s.events
	if o.Logger == nil {
		o.Logger = wdTestLogger(t)
	}
	if o.Interval == 0 {
		o.Interval = 100 * time.Millisecond
	}
	s.w = NewWatchdog(o)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- s.w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// faultTiming is one measured recovery.
type faultTiming struct {
	detect, back time.Duration
	rung         string
	class        string
}

// measure waits for healthy audio, injects a fault and times detection
// and recovery; recovery also needs the backend itself to show frames
// advancing at an audible level.
func (s *supervised) measure(t testing.TB, inject func()) faultTiming {
	t.Helper()
	pollUntil(t, 20*time.Second, "healthy audio before the fault", s.w.Healthy)
	before := s.w.Status()
	start := time.Now()
	inject()
	var ft faultTiming
	ft.detect = pollUntil(t, recoveryBound, "fault detected", func() bool { return s.w.Status().Faults > before.Faults })
	probe := &mpdFlowProbe{b: s.b}
	pollUntil(t, recoveryBound, "audio back", func() bool {
		return s.w.Status().Recoveries > before.Recoveries && s.w.Healthy() && probe.flowing()
	})
	ft.back = time.Since(start) // from injection, like detect
	ws := s.w.Status()
	if ws.LastFault != nil {
		ft.class = string(ws.LastFault.Fault)
	}
	for _, e := range s.events.Recent(5) {
		if e.Kind == "recovered" {
			ft.rung = e.Rung
			break
		}
	}
	return ft
}

func newSupervisedMPD(t testing.TB, mo MPDOptions, wo WatchdogOptions, ntracks int) (*mpdFixture, *supervised) {
	f := newMPDFixture(t, mo, ntracks)
	return f, superviseBackend(t, f.m, wo)
}

func TestMPDFaultRecovery(t *testing.T) {
	cases := []struct {
		name   string
		class  string // expected fault class
		inject func(t *testing.T, f *mpdFixture)
	}{
		{"sigkill", "mpd-exited", func(t *testing.T, f *mpdFixture) {
			killPID(t, f.m.PID(), syscall.SIGKILL)
		}},
		{"sigstop", "", func(t *testing.T, f *mpdFixture) {
			killPID(t, f.m.PID(), syscall.SIGSTOP)
		}},
		{"stop-by-client", "mpd-stopped", func(t *testing.T, f *mpdFixture) {
			if err := f.client(t).Stop(); err != nil {
				t.Fatal(err)
			}
		}},
		{"pause-by-client", "mpd-paused", func(t *testing.T, f *mpdFixture) {
			if err := f.client(t).Pause(true); err != nil {
				t.Fatal(err)
			}
		}},
		{"volume-zero-by-client", "mpd-volume", func(t *testing.T, f *mpdFixture) {
			if err := f.client(t).SetVolume(0); err != nil {
				t.Fatal(err)
			}
		}},
		{"queue-cleared-by-client", "", func(t *testing.T, f *mpdFixture) {
			if err := f.client(t).Clear(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own MPD
			f, s := newSupervisedMPD(t, MPDOptions{}, WatchdogOptions{}, 2)
			ft := s.measure(t, func() { tc.inject(t, f) })
			t.Logf("%s: class %s, detected in %v, audio back in %v (rung %s)", tc.name, ft.class, ft.detect.Round(time.Millisecond), ft.back.Round(time.Millisecond), ft.rung)
			if tc.class != "" && ft.class != tc.class {
				t.Errorf("fault class = %q, want %q", ft.class, tc.class)
			}
			if tc.name == "sigkill" || tc.name == "sigstop" {
				if pid := f.m.PID(); pid == 0 {
					t.Error("no mpd running after recovery")
				}
			}
		})
	}
}

// Tracks deleted under MPD's feet: MPD skips a file it cannot open
// without setting its error; mohd notices at the next song change, drops
// the files from the queue and reports them, and the loop plays on. The
// worst case is forced: another client jumps straight to a deleted track.
func TestMPDTrackDeletedIsSkipped(t *testing.T) {
	f, s := newSupervisedMPD(t, MPDOptions{}, WatchdogOptions{}, 3)
	pollUntil(t, 20*time.Second, "healthy", s.w.Healthy)
	on := f.m.Status().Index
	var gone []int
	for i, tr := range f.tracks {
		if i != on {
			if err := os.Remove(tr.Path); err != nil {
				t.Fatal(err)
			}
			gone = append(gone, i)
		}
	}
	start := time.Now()
	err := f.client(t).Play(gone[0])
	t.Logf("jump to deleted track: %v", err)
	detect := pollUntil(t, recoveryBound, "skips reported", func() bool { return len(f.m.Status().Skipped) == len(gone) })
	probe := &mpdFlowProbe{b: f.m}
	_ = pollUntil(t, recoveryBound, "audio flowing", func() bool { time.Sleep(100 * time.Millisecond); return probe.flowing() })
	items, err := f.client(t).PlaylistInfo(-1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0]["file"] != f.tracks[on].Path {
		t.Fatalf("queue = %v, want only the surviving track", items)
	}
	t.Logf("track-deleted: skipped in %v, audio flowing %v after injection (watchdog faults %d)",
		detect.Round(time.Millisecond), (time.Since(start)).Round(time.Millisecond), s.w.Status().Faults)
}

// The admin's playlist change keeps the song on air playing.
func TestMPDSetPlaylistKeepsSongOnAir(t *testing.T) {
	f, s := newSupervisedMPD(t, MPDOptions{}, WatchdogOptions{}, 3)
	pollUntil(t, 20*time.Second, "healthy", s.w.Healthy)
	pollUntil(t, 10*time.Second, "first track past 1 s", func() bool { return f.m.Status().Position > time.Second })
	before := f.m.Status()
	if before.Track == nil {
		t.Fatal("nothing on air")
	}
	// Reverse the order and drop one track that is not on air.
	var next []Track
	for i := len(f.tracks) - 1; i >= 0; i-- {
		if f.tracks[i].ID != before.Track.ID && len(next) == 1 {
			continue
		}
		next = append(next, f.tracks[i])
	}
	f.m.SetPlaylist(next)
	time.Sleep(500 * time.Millisecond)
	after := f.m.Status()
	if after.Track == nil || after.Track.ID != before.Track.ID || after.Position < before.Position {
		t.Fatalf("song on air changed: before %v at %v, after %v at %v", before.Track, before.Position, after.Track, after.Position)
	}
	items, err := f.client(t).PlaylistInfo(-1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(next) {
		t.Fatalf("queue has %d entries, want %d", len(items), len(next))
	}
	for i, it := range items {
		if it["file"] != next[i].Path {
			t.Errorf("queue[%d] = %s, want %s", i, it["file"], next[i].Path)
		}
	}
	if ws := s.w.Status(); ws.Faults != 0 {
		t.Fatalf("a playlist change caused faults: %+v", ws)
	}
	// A track outside the music folder (the built-in fallback lives in
	// the data dir) plays by absolute path.
	other := filepath.Join(t.TempDir(), "fallback.mp3")
	mpdTone(t, other, 2, 700)
	f.m.SetPlaylist([]Track{{ID: "fb", Path: other, Name: "fallback"}})
	pollUntil(t, 10*time.Second, "fallback on air", func() bool {
		st := f.m.Status()
		return st.Track != nil && st.Track.ID == "fb" && st.State == StatePlaying
	})
}

// MPD that cannot start at all: bounded retries, little CPU, a clear
// status, and finally the exit rung.
func TestSlowMPDBrokenBinaryBoundedRetries(t *testing.T) {
	skipShort(t)
	if inChild(t) {
		return
	}
	mpdNeedTools(t)
	dir := t.TempDir()
	m, err := NewMPD(MPDOptions{Logger: wdTestLogger(t), RunDir: filepath.Join(dir, "run"), RenditionDir: dir,
		Binary: filepath.Join(dir, "no-such-mpd"), Output: Output{Kind: OutputNull}})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPlaylist([]Track{{ID: "x", Path: filepath.Join(dir, "x.mp3")}})
	m.Play()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })
	s := superviseBackend(t, m, WatchdogOptions{Interval: 500 * time.Millisecond})

	const window = 10 * time.Second
	cpu0, wall0 := processCPU(t), time.Now()
	time.Sleep(window)
	cpu := processCPU(t) - cpu0
	share := cpu.Seconds() / time.Since(wall0).Seconds()
	ws := s.w.Status()
	st := m.Status()
	t.Logf("over %v: %d attempts %v, CPU %.3f%% of a core, state %s, fault %q, backoff %v",
		window, ws.Attempts, ws.AttemptsByRung, share*100, ws.State, st.Fault, ws.Backoff)
	if ws.Attempts < 2 || ws.Attempts > 6 {
		t.Errorf("%d restart attempts in %v, want a few with backoff (1 s doubling)", ws.Attempts, window)
	}
	if share > 0.03 {
		t.Errorf("CPU %.2f%% of a core while broken, want well under 1%% (bound 3%%)", share*100)
	}
	if st.Fault.Class != FaultMPDExited || !strings.Contains(st.Fault.Detail, "no-such-mpd") || st.State != StateFailed {
		t.Errorf("backend status = %s %q, want failed with a clear mpd-exited fault", st.State, st.Fault)
	}
	if ws.State != WatchdogFaulty && ws.State != WatchdogVerifying || s.w.Healthy() || ws.FaultsByClass["mpd-exited"] != 1 {
		t.Errorf("watchdog status = %+v", ws)
	}
}

// killPID signals one process the test started. It refuses pid ≤ 0,
// which kill(2) would turn into "the whole process group".
func killPID(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("no process to signal (pid %d)", pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %d: %v", pid, err)
	}
}

// processCPU is this process's user+system CPU time.
// inChild runs the calling test again, alone, in a child process and
// reports its result, returning true; in that child it returns false and
// the test body runs. A CPU share measured with RUSAGE_SELF is then the
// test's own, not that of goroutines earlier tests of the shared test
// binary may still be winding down.
func inChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv("MOH_TEST_CHILD") == t.Name() {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MOH_TEST_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in a child process:\n%s", out)
	if err != nil {
		t.Fatalf("in a child process: %v", err)
	}
	return true
}

func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func openFDs(t testing.TB) int { return len(fdTargets(t)) }

// fdTargets lists what this process's file descriptors point at.
func fdTargets(t testing.TB) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out = append(out, e.Name()+"→"+l)
	}
	return out
}

// 100 recoveries leave no goroutine and no file descriptor behind: 90
// stops by another client (replay) and 10 SIGKILLs (MPD restart, new
// connection and watcher).
func TestSlowMPDNoLeakAfter100Recoveries(t *testing.T) {
	skipShort(t)
	f, s := newSupervisedMPD(t, MPDOptions{PollInterval: 100 * time.Millisecond},
		WatchdogOptions{Interval: 50 * time.Millisecond, HealthyReset: time.Nanosecond}, 1)
	pollUntil(t, 20*time.Second, "healthy", s.w.Healthy)
	c := f.dialClient(t)
	defer func() { _ = c.Close() }()
	// Warm up one of each so lazily started goroutines exist in both counts.
	s.measure(t, func() { _ = c.Stop() })
	s.measure(t, func() { killPID(t, f.m.PID(), syscall.SIGKILL) })
	_ = c.Close()
	c = f.dialClient(t)
	time.Sleep(300 * time.Millisecond)
	runtime.GC() // connections gompd drops without closing are finalized, not leaked
	g0, fd0, fds0 := runtime.NumGoroutine(), openFDs(t), fdTargets(t)
	var worst time.Duration
	for i := range 100 {
		if i%10 == 9 {
			ft := s.measure(t, func() { killPID(t, f.m.PID(), syscall.SIGKILL) })
			worst = max(worst, ft.back)
			_ = c.Close()
			c = f.dialClient(t)
			continue
		}
		ft := s.measure(t, func() {
			if err := c.Stop(); err != nil {
				t.Fatalf("stop %d: %v", i, err)
			}
		})
		worst = max(worst, ft.back)
	}
	if ws := s.w.Status(); ws.Recoveries < 102 {
		t.Fatalf("recoveries = %d, want ≥ 102", ws.Recoveries)
	}
	_ = c.Close()
	var g1, fd1 int
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		g1, fd1 = runtime.NumGoroutine(), openFDs(t)
		if g1 <= g0+2 && fd1 <= fd0+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines %d → %d, fds %d → %d, worst recovery %v", g0, g1, fd0, fd1, worst)
	if g1 > g0+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutine leak: %d → %d\n%s", g0, g1, buf[:runtime.Stack(buf, true)])
	}
	if fd1 > fd0+1 {
		t.Fatalf("fd leak: %d → %d\nbefore %v\nafter  %v", fd0, fd1, fds0, fdTargets(t))
	}
}

var _ = errors.Is

// sinkTracker wraps the real OpenSink to expose the live aplay's PID and
// count opens; device() may change the ALSA device between opens (a card
// that appears later).
type sinkTracker struct {
	mu     sync.Mutex
	opens  int
	fails  int
	pid    int
	device func() string
	log    *slog.Logger
}

func (s *sinkTracker) open(ctx context.Context) (Sink, error) {
	dev := s.device()
	sink, err := OpenSink(ctx, Output{Kind: OutputALSA, Device: dev}, s.log)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if err != nil {
		s.fails++
		return nil, err
	}
	if p, ok := sink.(interface{ PID() int }); ok {
		s.pid = p.PID()
	}
	return sink, nil
}

func (s *sinkTracker) counts() (opens, fails, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens, s.fails, s.pid
}

func newSupervisedDirect(t testing.TB, device func() string, wo WatchdogOptions) (*Direct, *sinkTracker, *supervised) {
	t.Helper()
	mpdNeedTools(t)
	if _, err := exec.LookPath("aplay"); err != nil {
		t.Fatalf("aplay not installed (Debian package alsa-utils is a test dependency): %v", err)
	}
	dir := t.TempDir()
	var tracks []Track
	for i := range 2 {
		p := filepath.Join(dir, "tone"+wdItoa(i)+".mp3")
		mpdTone(t, p, 4, 440+220*i)
		tracks = append(tracks, Track{ID: "d" + wdItoa(i), Path: p, Name: filepath.Base(p)})
	}
	st := &sinkTracker{device: device, log: wdTestLogger(t)}
	d := NewDirect(DirectOptions{Logger: wdTestLogger(t), OpenSink: st.open})
	d.SetPlaylist(tracks)
	d.SetVolume(80)
	d.Play()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, st, superviseBackend(t, d, wo)
}

// The direct backend's aplay dies (a USB card pulled, a driver crash).
func TestDirectSinkKilled(t *testing.T) {
	_, st, s := newSupervisedDirect(t, func() string { return "null" }, WatchdogOptions{})
	pollUntil(t, 20*time.Second, "healthy", s.w.Healthy)
	var pid int
	ft := s.measure(t, func() {
		_, _, pid = st.counts()
		killPID(t, pid, syscall.SIGKILL)
	})
	opens, _, pid2 := st.counts()
	t.Logf("sink-killed: class %s, detected in %v, audio back in %v (rung %s), aplay %d → %d, %d opens",
		ft.class, ft.detect.Round(time.Millisecond), ft.back.Round(time.Millisecond), ft.rung, pid, pid2, opens)
	if pid2 == pid || opens < 2 {
		t.Fatalf("aplay not restarted: pid %d → %d, opens %d", pid, pid2, opens)
	}
}

// The sound card is missing at start (alsa:hw:9,0): bounded retries with
// backoff, a clear fault, no busy loop; when the card appears the audio
// comes back on its own.
func TestSlowDirectDeviceMissingAtStart(t *testing.T) {
	skipShort(t)
	if inChild(t) {
		return
	}
	var mu sync.Mutex
	device := "hw:9,0"
	dev := func() string { mu.Lock(); defer mu.Unlock(); return device }
	d, st, s := newSupervisedDirect(t, dev, WatchdogOptions{})
	const window = 10 * time.Second
	cpu0, wall0 := processCPU(t), time.Now()
	time.Sleep(window)
	share := (processCPU(t) - cpu0).Seconds() / time.Since(wall0).Seconds()
	opens, fails, _ := st.counts()
	bs, ws := d.Status(), s.w.Status()
	t.Logf("device missing for %v: %d aplay starts (%d failed), CPU %.2f%% of a core, fault %q, watchdog %s %v attempts %v backoff %v",
		window, opens, fails, share*100, bs.Fault, ws.State, ws.FaultsByClass, ws.AttemptsByRung, ws.Backoff)
	if opens < 2 || opens > 25 {
		t.Errorf("%d aplay starts in %v: want bounded retries with backoff", opens, window)
	}
	if bs.Fault.IsZero() || !strings.Contains(bs.Fault.Detail, "hw:9,0") && !strings.Contains(strings.ToLower(bs.Fault.Detail), "audio open") {
		t.Errorf("fault %q does not say what is wrong", bs.Fault)
	}
	if s.w.Healthy() || ws.Faults == 0 {
		t.Errorf("watchdog does not report the fault: %+v", ws)
	}
	if share > 0.05 {
		t.Errorf("CPU %.2f%% of a core while the card is missing (bound 5%%)", share*100)
	}
	// The card appears.
	mu.Lock()
	device = "null"
	mu.Unlock()
	appeared := time.Now()
	probe := &mpdFlowProbe{b: d}
	pollUntil(t, 70*time.Second, "audio once the card is there", func() bool {
		time.Sleep(100 * time.Millisecond)
		return s.w.Healthy() && probe.flowing()
	})
	t.Logf("card appeared: audio after %v", time.Since(appeared).Round(time.Millisecond))
}

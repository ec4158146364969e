package sysupdate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRunner is RAUC for the state machine's tests: two slots, a booted
// one, and a record of every mark. The real rauc is exercised in
// rauc_test.go.
type fakeRunner struct {
	mu         sync.Mutex
	booted     string
	good       map[string]bool
	versions   map[string]string
	marks      []string
	info       BundleInfo
	infoErr    error
	installErr error
	installed  int
	release    chan struct{} // if set, Install waits for it
}

func newFake() *fakeRunner {
	return &fakeRunner{booted: "A", good: map[string]bool{"A": true, "B": true},
		versions: map[string]string{"A": "1.0"},
		info:     BundleInfo{Compatible: "moh-appliance-x86_64", Version: "2.0"}}
}

func (f *fakeRunner) Info(ctx context.Context, bundle string) (BundleInfo, error) {
	return f.info, f.infoErr
}

func (f *fakeRunner) Install(ctx context.Context, bundle string, progress func(int, string)) error {
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	progress(50, "Copying image")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.installErr != nil {
		return f.installErr
	}
	f.installed++
	f.good["B"] = false
	f.versions["B"] = f.info.Version
	return nil
}

func (f *fakeRunner) Status(ctx context.Context) (RaucStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := RaucStatus{Compatible: "moh-appliance-x86_64", Booted: f.booted}
	for i, b := range []string{"A", "B"} {
		st.Slots = append(st.Slots, Slot{Name: "rootfs." + string(rune('0'+i)), Bootname: b,
			Version: f.versions[b], Booted: b == f.booted, Good: f.good[b]})
	}
	return st, nil
}

func (f *fakeRunner) Mark(ctx context.Context, good bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.good[f.booted] = good
	w := "bad"
	if good {
		w = "good"
	}
	f.marks = append(f.marks, w+" "+f.booted)
	return nil
}

func (f *fakeRunner) markList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.marks, ",")
}

// box is one simulated appliance: a data dir, a clock, a boot id, health
// and a reboot counter, shared across "restarts" of the Manager.
type box struct {
	t       *testing.T
	dir     string
	r       *fakeRunner
	now     time.Time
	bootID  string
	healthy bool
	reboots int
	evMu    sync.Mutex // the install goroutine reports events too
	events  []string
	rolls   int
}

func newBox(t *testing.T) *box {
	return &box{t: t, dir: t.TempDir(), r: newFake(), now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), bootID: "boot-1"}
}

// start is mohd starting (again) on this box.
func (b *box) start(version string) *Manager {
	b.t.Helper()
	m, err := New(Options{
		Runner:     b.r,
		Dir:        b.dir,
		Version:    version,
		Healthy:    func() bool { return b.healthy },
		Reboot:     func(context.Context) error { b.reboots++; return nil },
		Now:        func() time.Time { return b.now },
		HealthyFor: 60 * time.Second,
		Deadline:   5 * time.Minute,
		Event: func(msg string) {
			b.evMu.Lock()
			b.events = append(b.events, msg)
			b.evMu.Unlock()
		},
		OnRollback: func() { b.rolls++ },
		BootID:     func() string { return b.bootID },
		FreeBytes:  func(string) (uint64, error) { return 1 << 40, nil },
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return m
}

// powerCycle is a reboot: a new boot id, and GRUB boots slot.
func (b *box) powerCycle(slot string) {
	b.bootID += "+"
	b.r.mu.Lock()
	b.r.booted = slot
	b.r.mu.Unlock()
}

// advance runs m's boot rules over d of fake time, one step per second.
func (b *box) advance(m *Manager, d time.Duration) {
	for end := b.now.Add(d); b.now.Before(end); b.now = b.now.Add(time.Second) {
		m.Step(context.Background())
	}
	m.Step(context.Background())
}

func (b *box) state() State {
	b.t.Helper()
	s, err := loadState(b.dir)
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *box) hasEvent(sub string) bool {
	b.evMu.Lock()
	defer b.evMu.Unlock()
	for _, e := range b.events {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

// install uploads a bundle and waits for the install to finish.
func (b *box) install(m *Manager, reboot string) {
	b.t.Helper()
	if _, err := m.Upload(context.Background(), bytes.NewReader([]byte("bundle")), 6, Request{Reboot: reboot}); err != nil {
		b.t.Fatal(err)
	}
	waitPhase(b.t, m, PhaseRebooting)
}

func waitPhase(t *testing.T, m *Manager, want Phase) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.Status().Phase != want {
		if time.Now().After(deadline) {
			t.Fatalf("phase %s, want %s (reason %q)", m.Status().Phase, want, m.Status().Reason)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTrialBecomesGoodAfterHealthyWindow(t *testing.T) {
	b := newBox(t)
	m := b.start("1.0")
	b.install(m, "now")
	if b.r.installed != 1 {
		t.Fatal("not installed")
	}
	if _, err := os.Stat(filepath.Join(b.dir, bundleFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the bundle was kept after install: %v", err)
	}
	b.advance(m, time.Second)
	if b.reboots != 1 {
		t.Fatalf("reboots %d, want 1 for reboot=now", b.reboots)
	}

	b.powerCycle("B")
	m = b.start("2.0")
	b.healthy = true
	b.advance(m, 30*time.Second)
	if got := b.state().Phase; got != PhaseTrial {
		t.Fatalf("after 30 s healthy: phase %s, want trial", got)
	}
	if b.r.markList() != "" {
		t.Fatalf("marked before the healthy window: %s", b.r.markList())
	}
	b.advance(m, 31*time.Second)
	if got := b.state().Phase; got != PhaseGood {
		t.Fatalf("after 61 s healthy: phase %s, want good", got)
	}
	if b.r.markList() != "good B" {
		t.Fatalf("marks %q, want good B", b.r.markList())
	}
	if !b.hasEvent("update: now running 2.0 in slot B") {
		t.Fatalf("no such event")
	}
	// Steady state afterwards: no more flash writes.
	b.advance(m, 5*time.Minute)
	if b.r.markList() != "good B" {
		t.Fatalf("marked again in steady state: %q", b.r.markList())
	}
}

func TestTrialHealthMustBeContinuous(t *testing.T) {
	b := newBox(t)
	m := b.start("1.0")
	b.install(m, "now")
	b.powerCycle("B")
	m = b.start("2.0")
	b.healthy = true
	b.advance(m, 50*time.Second)
	b.healthy = false
	b.advance(m, time.Second)
	b.healthy = true
	b.advance(m, 50*time.Second)
	if got := b.state().Phase; got != PhaseTrial {
		t.Fatalf("phase %s after a broken window, want trial", got)
	}
}

func TestTrialWithoutHealthRollsBack(t *testing.T) {
	b := newBox(t)
	m := b.start("1.0")
	b.install(m, "now")
	b.advance(m, time.Second)
	b.powerCycle("B")
	m = b.start("2.0")
	b.advance(m, 4*time.Minute)
	if got := b.state().Phase; got != PhaseTrial {
		t.Fatalf("phase %s before the deadline, want trial", got)
	}
	b.advance(m, 61*time.Second)
	st := b.state()
	if st.Phase != PhaseRollback || !strings.Contains(st.Reason, "slot B") {
		t.Fatalf("state %+v, want rollback naming slot B", st)
	}
	if b.r.markList() != "bad B" {
		t.Fatalf("marks %q, want bad B", b.r.markList())
	}
	if b.reboots != 2 || b.rolls != 1 || m.Rollbacks() != 1 {
		t.Fatalf("reboots %d rollbacks %d/%d, want 2 and 1", b.reboots, b.rolls, m.Rollbacks())
	}
	if !b.hasEvent("update: rollback:") {
		t.Fatalf("no such event")
	}
	// GRUB boots A; the rollback stays reported and A is not rewritten.
	b.powerCycle("A")
	m = b.start("1.0")
	b.healthy = true
	b.advance(m, 2*time.Minute)
	if st := m.Status(); st.Phase != PhaseRollback || b.reboots != 2 {
		t.Fatalf("after falling back: %+v, reboots %d", st, b.reboots)
	}
	if b.r.markList() != "bad B" {
		t.Fatalf("marks %q: A was good already", b.r.markList())
	}
}

func TestBootedOtherSlotIsRollback(t *testing.T) {
	b := newBox(t)
	m := b.start("1.0")
	b.install(m, "now")
	b.powerCycle("A") // GRUB fell back: B never came up
	m = b.start("1.0")
	b.advance(m, time.Second)
	st := m.Status()
	if st.Phase != PhaseRollback || st.Reason != "slot B did not come up (booted A)" {
		t.Fatalf("status %+v", st)
	}
	if b.rolls != 1 || !b.hasEvent("slot B did not come up (booted A)") {
		t.Fatalf("rollbacks %d, or no event", b.rolls)
	}
}

func TestRebootAtLocalTimeSurvivesRestart(t *testing.T) {
	b := newBox(t)
	m := b.start("1.0")
	b.install(m, "03:00")
	want := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	if st := b.state(); st.RebootAt == nil || !st.RebootAt.Equal(want) {
		t.Fatalf("reboot_at %v, want %v", st.RebootAt, want)
	}
	b.advance(m, time.Hour)
	if b.reboots != 0 {
		t.Fatal("rebooted before 03:00")
	}
	// mohd restarts (same boot): the pending reboot is still state.
	m = b.start("1.0")
	b.now = want.Add(-time.Second)
	b.advance(m, 2*time.Second)
	if b.reboots != 1 {
		t.Fatalf("reboots %d at 03:00, want 1", b.reboots)
	}
	if _, err := m.Upload(context.Background(), strings.NewReader("x"), 1, Request{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second update while the reboot is pending: %v, want ErrBusy", err)
	}
}

// TestRestartResumesEachPhase is a kill -9 of mohd at each phase: the
// next start must land in the right phase, from state.json alone.
func TestRestartResumesEachPhase(t *testing.T) {
	for _, tc := range []struct {
		phase   Phase
		booted  string
		newBoot bool
		want    Phase
	}{
		{PhaseDownloading, "A", false, PhaseFailed},
		{PhaseVerifying, "A", false, PhaseFailed},
		{PhaseInstalling, "A", false, PhaseFailed},
		{PhaseInstalling, "A", true, PhaseFailed},
		{PhaseRebooting, "A", false, PhaseRebooting},
		{PhaseRebooting, "B", true, PhaseTrial},
		{PhaseRebooting, "A", true, PhaseRollback},
		{PhaseTrial, "B", false, PhaseTrial},
		{PhaseTrial, "A", true, PhaseRollback},
		{PhaseGood, "B", false, PhaseGood},
		{PhaseRollback, "A", false, PhaseRollback},
	} {
		name := string(tc.phase) + "/booted-" + tc.booted
		if tc.newBoot {
			name += "/new-boot"
		}
		t.Run(name, func(t *testing.T) {
			b := newBox(t)
			at := b.now.Add(time.Hour)
			if err := saveState(b.dir, State{Phase: tc.phase, TargetSlot: "B", FromSlot: "A",
				TargetVersion: "2.0", FromVersion: "1.0", RebootAt: &at, BootID: "boot-1"}); err != nil {
				t.Fatal(err)
			}
			// The download a power cut interrupted.
			os.WriteFile(filepath.Join(b.dir, bundleTemp), []byte("half"), 0o600)
			if tc.newBoot {
				b.powerCycle(tc.booted)
			} else {
				b.r.booted = tc.booted
			}
			m := b.start("x")
			b.advance(m, time.Second)
			if got := b.state().Phase; got != tc.want {
				t.Fatalf("phase %s, want %s (reason %q)", got, tc.want, b.state().Reason)
			}
			if _, err := os.Stat(filepath.Join(b.dir, bundleTemp)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the interrupted download was kept: %v", err)
			}
			if b.reboots != 0 {
				t.Fatalf("rebooted %d times", b.reboots)
			}
		})
	}
}

func TestRefusalsInstallNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		info     BundleInfo
		infoErr  error
		sha      string
		wantCode string
	}{
		{name: "bad signature", infoErr: errors.New("signature verification failed"), wantCode: "bundle_refused"},
		{name: "wrong compatible", info: BundleInfo{Compatible: "other-box", Version: "2.0"}, wantCode: "bundle_refused"},
		{name: "wrong sha256", info: BundleInfo{Compatible: "moh-appliance-x86_64"}, sha: strings.Repeat("ab", 32), wantCode: "sha256_mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t)
			b.r.info, b.r.infoErr = tc.info, tc.infoErr
			m := b.start("1.0")
			_, err := m.Upload(context.Background(), strings.NewReader("bundle"), 6, Request{SHA256: tc.sha})
			var ref *Refused
			if !errors.As(err, &ref) || ref.Code != tc.wantCode {
				t.Fatalf("err %v, want Refused %s", err, tc.wantCode)
			}
			if b.r.installed != 0 {
				t.Fatal("installed a refused bundle")
			}
			if st := b.state(); st.Phase != PhaseFailed {
				t.Fatalf("phase %s, want failed", st.Phase)
			}
			ents, _ := os.ReadDir(b.dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "bundle") {
					t.Fatalf("refused bundle kept: %s", e.Name())
				}
			}
			// Refused is not busy: the next update may come.
			b.r.info, b.r.infoErr = BundleInfo{Compatible: "moh-appliance-x86_64", Version: "2.0"}, nil
			b.install(m, "now")
		})
	}
}

func TestBusyAndDiskFull(t *testing.T) {
	b := newBox(t)
	b.r.release = make(chan struct{})
	m := b.start("1.0")
	if _, err := m.Upload(context.Background(), strings.NewReader("bundle"), 6, Request{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Upload(context.Background(), strings.NewReader("bundle"), 6, Request{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second update during install: %v, want ErrBusy", err)
	}
	close(b.r.release)
	waitPhase(t, m, PhaseRebooting)

	b2 := newBox(t)
	m2, err := New(Options{Runner: b2.r, Dir: b2.dir, FreeBytes: func(string) (uint64, error) { return 1 << 20, nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m2.Upload(context.Background(), strings.NewReader("x"), 100<<20, Request{})
	var ns *NoSpace
	if !errors.As(err, &ns) {
		t.Fatalf("err %v, want NoSpace", err)
	}
	if _, err := os.Stat(filepath.Join(b2.dir, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused-for-space request wrote state")
	}
}

func TestSteadyStateMarksGoodOnlyWhenNeeded(t *testing.T) {
	b := newBox(t)
	b.r.good["A"] = false
	m := b.start("1.0")
	b.healthy = true
	b.advance(m, 59*time.Second)
	if b.r.markList() != "" {
		t.Fatal("marked before the healthy window")
	}
	b.advance(m, 2*time.Minute)
	if b.r.markList() != "good A" {
		t.Fatalf("marks %q, want one good A", b.r.markList())
	}
	b2 := newBox(t) // A already good: nothing written
	m2 := b2.start("1.0")
	b2.healthy = true
	b2.advance(m2, 3*time.Minute)
	if b2.r.markList() != "" {
		t.Fatalf("marks %q on a good slot", b2.r.markList())
	}
	if _, err := os.Stat(filepath.Join(b2.dir, stateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("steady state wrote state.json")
	}
}

func TestRebootTime(t *testing.T) {
	b := newBox(t)
	m := b.start("1.0")
	for in, want := range map[string]string{"now": "10:00", "": "10:00", "03:00": "03:00+1", "23:59": "23:59", "10:00": "10:00+1"} {
		at, err := m.rebootTime(in)
		if err != nil {
			t.Fatal(in, err)
		}
		got := at.Format("15:04")
		if at.Day() != b.now.Day() {
			got += "+1"
		}
		if got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"3:00", "25:00", "tomorrow", "03:00:00"} {
		if _, err := m.rebootTime(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestNoBootID: without the kernel's boot id, a start after mohd asked
// for the reboot is the new boot, so GRUB's fallback is a rollback, not
// a reboot loop.
func TestNoBootID(t *testing.T) {
	b := newBox(t)
	b.bootID = ""
	m := b.start("1.0")
	b.install(m, "now")
	b.advance(m, time.Second)
	if b.reboots != 1 || !b.state().RebootRequested {
		t.Fatalf("reboots %d, state %+v", b.reboots, b.state())
	}
	b.r.booted = "A" // GRUB fell back
	m = b.start("1.0")
	b.advance(m, 3*time.Minute)
	if st := b.state(); st.Phase != PhaseRollback || b.reboots != 1 {
		t.Fatalf("state %+v, reboots %d: want rollback and no second reboot", st, b.reboots)
	}

	b2 := newBox(t)
	b2.bootID = ""
	m2 := b2.start("1.0")
	b2.install(m2, "03:00")
	m2 = b2.start("1.0") // a restart before 03:00: still waiting
	b2.advance(m2, time.Minute)
	if st := b2.state(); st.Phase != PhaseRebooting || b2.reboots != 0 {
		t.Fatalf("restart before the reboot: %+v, reboots %d", st, b2.reboots)
	}
	b2.r.booted = "B"
	m2 = b2.start("2.0")
	b2.advance(m2, time.Second)
	if st := b2.state(); st.Phase != PhaseTrial {
		t.Fatalf("target slot up: phase %s, want trial", st.Phase)
	}
}

// TestInstallMarksTheFallbackGood: a box updated before mohd marked its
// booted slot good (soon after a power cut: GRUB counted a try) marks it
// good first if it plays, so the slot it falls back to has all its tries;
// one that does not play leaves the marks alone.
func TestInstallMarksTheFallbackGood(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		b := newBox(t)
		b.r.good["A"] = false
		b.healthy = healthy
		m := b.start("1.0")
		b.install(m, "23:59")
		want := ""
		if healthy {
			want = "good A"
		}
		if got := b.r.markList(); got != want {
			t.Errorf("healthy %v: marks %q before the reboot, want %q", healthy, got, want)
		}
		if b.r.installed != 1 {
			t.Errorf("healthy %v: installed %d times, want 1", healthy, b.r.installed)
		}
	}
}

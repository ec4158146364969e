package player

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newTestPlayer runs a Player over the real direct backend into a paced
// null sink, with the built-in track as fallback.
func newTestPlayer(t *testing.T, saved *[]Settings) (*Player, context.CancelFunc) {
	t.Helper()
	return newTestPlayerSave(t, func(s Settings) error {
		if saved != nil {
			*saved = append(*saved, s)
		}
		return nil
	})
}

// newTestPlayerSave is newTestPlayer with the given Save.
func newTestPlayerSave(t *testing.T, save func(Settings) error) (*Player, context.CancelFunc) {
	t.Helper()
	dir := t.TempDir()
	fb, err := EnsureFallback(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirect(DirectOptions{
		OpenSink:    func(ctx context.Context) (Sink, error) { return NewNullSink(nil), nil },
		IdleBackoff: 50 * time.Millisecond,
	})
	p := New(Options{
		Backend:  d,
		Fallback: fb,
		Settings: DefaultSettings,
		Save:     save,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p, cancel
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func(Status) bool, p *Player) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := p.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s; status %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEmptyPlaylistPlaysFallback(t *testing.T) {
	p, _ := newTestPlayer(t, nil)
	st := waitFor(t, "fallback playing", func(s Status) bool {
		return s.State == StatePlaying && s.Frames > SampleRate/10 && s.Track != nil
	}, p)
	if !st.Fallback || st.Track.ID != "fallback" {
		t.Fatalf("empty playlist: want the built-in track on air, got %+v", st)
	}
}

// TestFallbackWhenEveryTrackRefused: a playlist where nothing can be played
// must not leave the line silent.
func TestFallbackWhenEveryTrackRefused(t *testing.T) {
	p, _ := newTestPlayer(t, nil)
	dir := t.TempDir()
	bad := filepath.Join(dir, "noise.mp3")
	if err := os.WriteFile(bad, []byte("this is not an mp3 file at all, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.SetPlaylist([]Track{{ID: "a", Name: "noise.mp3", Path: bad}, {ID: "b", Name: "gone.mp3", Path: filepath.Join(dir, "gone.mp3")}})
	st := waitFor(t, "fallback after every track refused", func(s Status) bool {
		return s.Fallback && s.Track != nil && s.Track.ID == "fallback" && s.State == StatePlaying
	}, p)
	f0 := st.Frames
	waitFor(t, "audio flowing on the fallback", func(s Status) bool { return s.Frames > f0+SampleRate/10 }, p)
	if ev := p.Events().Recent(0); !hasFault(ev, FaultNoTrack) {
		t.Fatalf("no event tells the admin why the built-in track plays: %+v", ev)
	}
	// A new playlist gets its chance again.
	fb := p.fallback
	p.SetPlaylist([]Track{{ID: "good", Name: "good.mp3", Path: fb.Path}})
	waitFor(t, "the new playlist on air", func(s Status) bool {
		return !s.Fallback && s.Track != nil && s.Track.ID == "good"
	}, p)
}

func hasFault(ev []Event, fault FaultClass) bool {
	for _, e := range ev {
		if e.Fault == fault {
			return true
		}
	}
	return false
}

// TestSettingsSavedOnlyOnChange: repeated API calls must not wear the
// flash; each real change is saved once.
func TestSettingsSavedOnlyOnChange(t *testing.T) {
	var saved []Settings
	p, _ := newTestPlayer(t, &saved)
	p.SetVolume(50)
	p.SetVolume(50)
	p.SetVolume(150) // clamped to 100
	p.Play()         // already playing
	p.Stop()
	p.Stop()
	want := []Settings{{Volume: 50, Playing: true}, {Volume: 100, Playing: true}, {Volume: 100, Playing: false}}
	if len(saved) != len(want) {
		t.Fatalf("saved %d times %+v, want %+v", len(saved), saved, want)
	}
	for i := range want {
		if saved[i] != want[i] {
			t.Fatalf("save %d = %+v, want %+v", i, saved[i], want[i])
		}
	}
	waitFor(t, "stopped", func(s Status) bool { return s.State == StateStopped && s.Wanted == StateStopped }, p)
}

// TestConcurrentChangesSavedInOrder: with many admins changing volume and
// play/stop at once, and saves that take varying time, the last settings
// saved must be the live ones (and the backend's), so a restart comes back
// to what was acknowledged last. Saves must never overlap.
func TestConcurrentChangesSavedInOrder(t *testing.T) {
	var mu sync.Mutex
	var disk Settings
	var saving, overlaps int
	p, _ := newTestPlayerSave(t, func(s Settings) error {
		mu.Lock()
		saving++
		if saving > 1 {
			overlaps++
		}
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // fsync takes its time
		mu.Lock()
		disk = s
		saving--
		mu.Unlock()
		return nil
	})
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 60; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch i % 3 {
				case 0:
					p.SetVolume(round + i)
				case 1:
					p.Stop()
				default:
					p.Play()
				}
			}()
		}
		wg.Wait()
		live := p.Settings()
		mu.Lock()
		saved, ov := disk, overlaps
		mu.Unlock()
		if saved != live {
			t.Fatalf("round %d: saved %+v, live %+v: an older save overwrote a newer one", round, saved, live)
		}
		if ov > 0 {
			t.Fatalf("round %d: %d saves overlapped", round, ov)
		}
		if v := p.backend.(*Direct).wantNow().volume; v != live.Volume {
			t.Fatalf("round %d: backend volume %d, settings %d", round, v, live.Volume)
		}
	}
}

// TestChangeRefusedWhenNotSaved: a change that cannot be saved (a full
// disk) is refused with an error that keeps its errno, and nothing changes
// live: what plays, what is saved and what the client was told agree.
func TestChangeRefusedWhenNotSaved(t *testing.T) {
	var mu sync.Mutex
	full := true
	var saved []Settings
	p, _ := newTestPlayerSave(t, func(s Settings) error {
		mu.Lock()
		defer mu.Unlock()
		if full {
			return fmt.Errorf("save state: %w", &os.PathError{Op: "write", Path: "/data/.moh-tmp-state.json", Err: syscall.ENOSPC})
		}
		saved = append(saved, s)
		return nil
	})
	waitFor(t, "playing", func(s Status) bool { return s.State == StatePlaying }, p)
	before := p.Settings()
	nEvents := len(p.Events().Recent(0))
	for name, change := range map[string]func() error{
		"volume": func() error { return p.SetVolume(before.Volume / 2) },
		"stop":   p.Stop,
	} {
		err := change()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("%s on a full disk: err = %v, want one wrapping ENOSPC", name, err)
		}
		if got := p.Settings(); got != before {
			t.Fatalf("%s refused but settings changed to %+v", name, got)
		}
	}
	if v := p.backend.(*Direct).wantNow().volume; v != before.Volume {
		t.Fatalf("refused volume reached the backend: %d", v)
	}
	time.Sleep(200 * time.Millisecond)
	if st := p.Status(); st.State != StatePlaying || st.Wanted != StatePlaying {
		t.Fatalf("refused stop stopped the player: %+v", st)
	}
	if n := len(p.Events().Recent(0)); n != nEvents {
		t.Fatalf("refused changes were logged as admin actions: %+v", p.Events().Recent(0))
	}
	// Play while playing changes nothing, so needs no save.
	if err := p.Play(); err != nil {
		t.Fatalf("play while playing on a full disk: %v", err)
	}
	mu.Lock()
	full = false
	mu.Unlock()
	if err := p.SetVolume(10); err != nil {
		t.Fatal(err)
	}
	if got := p.Settings(); got.Volume != 10 || len(saved) != 1 || saved[0] != got {
		t.Fatalf("after room again: settings %+v, saved %+v", got, saved)
	}
}

package player

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// newTestPlayer runs a Player over the real direct backend into a paced
// null sink, with the built-in track as fallback.
func newTestPlayer(t *testing.T, saved *[]Settings) (*Player, context.CancelFunc) {
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
		Save: func(s Settings) error {
			if saved != nil {
				*saved = append(*saved, s)
			}
			return nil
		},
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
	if ev := p.Events().Recent(0); !hasFault(ev, "no-playable-track") {
		t.Fatalf("no event tells the admin why the built-in track plays: %+v", ev)
	}
	// A new playlist gets its chance again.
	fb := p.fallback
	p.SetPlaylist([]Track{{ID: "good", Name: "good.mp3", Path: fb.Path}})
	waitFor(t, "the new playlist on air", func(s Status) bool {
		return !s.Fallback && s.Track != nil && s.Track.ID == "good"
	}, p)
}

func hasFault(ev []Event, fault string) bool {
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

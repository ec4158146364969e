package player

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// playlistBackend is a fake backend that records the playlists it is
// handed and whose Run may fail.
type playlistBackend struct {
	wdFakeBackend
	runErr error

	plMu sync.Mutex
	pls  [][]Track
}

func (b *playlistBackend) Run(ctx context.Context) error {
	if b.runErr != nil {
		return b.runErr
	}
	<-ctx.Done()
	return nil
}

func (b *playlistBackend) SetPlaylist(t []Track) {
	b.plMu.Lock()
	defer b.plMu.Unlock()
	b.pls = append(b.pls, t)
}

func (b *playlistBackend) last() []Track {
	b.plMu.Lock()
	defer b.plMu.Unlock()
	if len(b.pls) == 0 {
		return nil
	}
	return b.pls[len(b.pls)-1]
}

// A backend that cannot run ends Player.Run with its error, and the
// parts beside it stop too.
func TestPlayerRunEndsWithItsBackend(t *testing.T) {
	boom := errors.New("backend cannot run")
	b := &playlistBackend{runErr: boom}
	b.now = time.Now
	p := New(Options{Backend: b, Logger: wdTestLogger(t), Settings: DefaultSettings})
	// Were the guard left running, Run would last until this deadline and
	// then return nil.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Run(ctx); !errors.Is(err, boom) || ctx.Err() != nil {
		t.Fatalf("Run = %v (deadline: %v), want the backend's error at once", err, ctx.Err())
	}
}

// The built-in track takes over on the backend's typed signal that it has
// nothing to play (FaultNoTrack), and on nothing else: a fault of another
// class is not read for words like "no playable track".
func TestPlayerFallbackOnNoTrackSignal(t *testing.T) {
	b := &playlistBackend{}
	b.now = time.Now
	fb := Track{ID: "fallback", Path: "/fallback.mp3"}
	p := New(Options{Backend: b, Logger: wdTestLogger(t), Fallback: fb, Settings: DefaultSettings})
	p.SetPlaylist([]Track{{ID: "a", Path: "/a.mp3"}, {ID: "b", Path: "/b.mp3"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	b.set(func(st *BackendStatus) {
		st.State, st.Fault = StateFailed, Fault{Class: FaultSinkFailed, Detail: "no playable track: the card is gone"}
	})
	time.Sleep(1200 * time.Millisecond) // two turns of the guard
	if st := p.Status(); st.Fallback || len(b.last()) != 2 {
		t.Fatalf("a sink fault put the built-in track on: fallback=%v playlist %v", st.Fallback, b.last())
	}

	b.set(func(st *BackendStatus) { st.Fault = Fault{Class: FaultNoTrack, Detail: "refused"} })
	pollUntil(t, 5*time.Second, "the built-in track", func() bool {
		pl := b.last()
		return len(pl) == 1 && pl[0].ID == "fallback"
	})
	if st := p.Status(); !st.Fallback {
		t.Errorf("status does not say the built-in track plays: %+v", st)
	}
	if !hasFault(p.Events().Recent(0), FaultNoTrack) {
		t.Errorf("no %s event: %+v", FaultNoTrack, p.Events().Recent(0))
	}
}

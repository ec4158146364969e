package player

import "sync"

// wanted is what the Player last asked a backend for, shared between the
// Backend methods (any goroutine, never blocking) and the one goroutine
// that owns the backend's output. Every change wakes that goroutine;
// generations tell it which changes it has not applied yet. Both backends
// embed it, so its SetPlaylist, Play, Stop, Next and SetVolume are theirs.
type wanted struct {
	mu    sync.Mutex
	w     want
	wakes chan struct{} // buffered 1: a change is waiting
}

// want is one snapshot of wanted.
type want struct {
	// playlist is shared between snapshots: replaced, never changed in
	// place.
	playlist    []Track
	playlistGen uint64
	playing     bool
	playGen     uint64
	volume      int // 0..100; -1 until set (the backend leaves it alone)
	volumeGen   uint64
	next        int  // Next calls not acted on yet
	fade        bool // the playlist came from SetPlaylistFaded (fade.go)
}

func newWanted(volume int) *wanted {
	return &wanted{w: want{volume: volume}, wakes: make(chan struct{}, 1)}
}

// wake tells the owner goroutine to look at what changed. It never blocks:
// one pending wake covers any number of changes.
func (w *wanted) wake() {
	select {
	case w.wakes <- struct{}{}:
	default:
	}
}

func (w *wanted) change(f func(*want)) {
	w.mu.Lock()
	f(&w.w)
	w.mu.Unlock()
	w.wake()
}

// SetPlaylist implements Backend.
func (w *wanted) SetPlaylist(tracks []Track) {
	tracks = append([]Track(nil), tracks...)
	w.change(func(s *want) { s.playlist = tracks; s.playlistGen++; s.fade = false })
}

// Play implements Backend.
func (w *wanted) Play() { w.setPlaying(true) }

// Stop implements Backend.
func (w *wanted) Stop() { w.setPlaying(false) }

func (w *wanted) setPlaying(on bool) {
	w.change(func(s *want) { s.playing = on; s.playGen++ })
}

// Next implements Backend.
func (w *wanted) Next() { w.change(func(s *want) { s.next++ }) }

// SetVolume implements Backend, clamping v to 0..100.
func (w *wanted) SetVolume(v int) {
	v = clampVolume(v)
	w.change(func(s *want) { s.volume = v; s.volumeGen++ })
}

// wantNow returns the current snapshot.
func (w *wanted) wantNow() want {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w
}

// takeWant returns the current snapshot and marks its Next calls as
// acted on.
func (w *wanted) takeWant() want {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.w
	w.w.next = 0
	return s
}

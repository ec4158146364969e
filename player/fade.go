package player

// This file is the direct backend's switch with a fade: a playlist change
// that must cut the track on air (an emergency override, an interrupting
// message) fades it out over switchFade, down to exact silence, and only
// then cuts; the next track starts with a ramp of fadeInFrames, so neither
// edge is a click. A change that keeps the track on air needs no fade and
// is taken at once, as SetPlaylist always did.

import "time"

const (
	switchFade       = 300 * time.Millisecond
	switchFadeFrames = int(switchFade * SampleRate / time.Second)
	// fadeInFrames ramps the track that follows the cut up from silence
	// (10 ms): a track does not necessarily start at a zero crossing.
	fadeInFrames = SampleRate / 100
)

// fadeState is the audio goroutine's fade in progress.
type fadeState struct {
	active  bool    // fading out towards a cut
	left    int     // frames of the fade out still to play
	pending []Track // the playlist taken once the fade reaches 0
	done    bool    // the fade reached 0: cut once the block is written
	in      int     // frames of the fade in still to play
}

// SetPlaylistFaded is SetPlaylist for a change that may cut the track on
// air: the direct backend fades it out first (MPD switches at once).
func (w *wanted) SetPlaylistFaded(tracks []Track) {
	tracks = append([]Track(nil), tracks...)
	w.change(func(s *want) { s.playlist = tracks; s.playlistGen++; s.fade = true })
}

// SwitchNow replaces the playlist like SetPlaylist, but a track on air
// that is not in the new one stops at once: faded out over 300 ms on
// the direct backend, cut at once on MPD.
func (p *Player) SwitchNow(tracks []Track) {
	p.mu.Lock()
	p.playlist = append([]Track(nil), tracks...)
	p.refusedAll = false
	pl := p.effectivePlaylist()
	p.mu.Unlock()
	if f, ok := p.backend.(interface{ SetPlaylistFaded([]Track) }); ok {
		f.SetPlaylistFaded(pl)
		return
	}
	p.backend.SetPlaylist(pl)
}

// takePlaylist adopts a new playlist: after a fade when it cuts the track
// on air and asked for one, at once otherwise. During a fade the newest
// playlist becomes the one taken at its end.
func (l *audioLoop) takePlaylist(w want) {
	if l.fade.active {
		l.fade.pending = w.playlist
		return
	}
	if w.fade && w.playing && l.cur != nil && indexOfTrack(w.playlist, l.cur.t) < 0 {
		l.fade = fadeState{active: true, left: switchFadeFrames, pending: w.playlist}
		return
	}
	l.setPlaylist(w.playlist)
}

// applyFade scales the block just filled by the fade in progress. The
// fade out is linear to exactly 0; what remains of the block after it is
// silence.
func (l *audioLoop) applyFade() {
	if !l.fade.active && l.fade.in == 0 {
		return
	}
	frames := len(l.block) / BytesPerFrame
	for i := range frames {
		var m float64
		switch {
		case l.fade.active:
			if l.fade.left > 0 {
				l.fade.left--
			}
			m = float64(l.fade.left) / float64(switchFadeFrames)
		case l.fade.in > 0:
			l.fade.in--
			m = 1 - float64(l.fade.in)/float64(fadeInFrames)
		default:
			continue
		}
		for ch := range Channels {
			o := i*BytesPerFrame + ch*2
			v := int16(uint16(l.block[o]) | uint16(l.block[o+1])<<8)
			s := int16(float64(v) * m)
			l.block[o], l.block[o+1] = byte(uint16(s)), byte(uint16(s)>>8)
		}
	}
	if l.fade.active && l.fade.left == 0 {
		l.fade.done = true
	}
}

// finishFade cuts to the pending playlist once the block that reached
// silence has been written.
func (l *audioLoop) finishFade() {
	if !l.fade.done || l.ready {
		return
	}
	pl := l.fade.pending
	l.fade = fadeState{in: fadeInFrames}
	l.setPlaylist(pl)
}

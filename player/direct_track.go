package player

// This file is the direct backend's side of the tracks: opening the next
// one (or saying why nothing can play), checking a file is one the decoder
// plays right, playing it from its PCM cache file when it has one, and
// keeping a panic in go-mp3 from taking the line down.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mohproject/moh/internal/mp3"
)

// openTrack is the track being decoded.
type openTrack struct {
	t     Track
	f     *os.File
	dec   trackSource // the cache file, or go-mp3 live
	wrote bool        // produced audio
}

// openNext opens the track at l.idx, or records why it cannot and moves
// the index on. It returns false after waiting because nothing can play.
func (l *audioLoop) openNext(ctx context.Context) bool {
	d := l.d
	if len(l.pl) == 0 {
		l.problem("empty playlist")
		d.mu.Lock()
		d.st.Track, d.st.Index, d.st.Position, d.st.Duration = nil, -1, 0, 0
		d.mu.Unlock()
		d.setState(StateStopped, Fault{Class: FaultNoTrack, Detail: "empty playlist"})
		l.wait(ctx, time.Time{})
		return false
	}
	if l.failures >= len(l.pl) {
		wait := l.idleBackoff.next()
		l.problem(fmt.Sprintf("no playable track: all %d in the playlist were refused; retrying in %s", len(l.pl), wait))
		d.setState(StateFailed, Fault{Class: FaultNoTrack, Detail: "no playable track"})
		l.answerReplay(errors.New("direct: replay: no playable track"))
		l.wait(ctx, time.Now().Add(wait))
		l.failures = 0
		return false
	}
	t := l.pl[l.idx]
	ot, err := openTrackFile(t, d.opt.PCMCache)
	if err != nil {
		d.skips.add(t, err.Error())
		l.failures++
		l.advance()
		return true
	}
	if _, live := ot.dec.(*Gapless); live {
		// Decoded live: have the playlist's missing cache files built
		// in the background, so the next pass reads PCM instead.
		d.opt.PCMCache.Want(l.pl)
	}
	l.cur = ot
	d.mu.Lock()
	d.st.Track = &t
	d.st.Index = l.idx
	d.st.Position = 0
	d.st.Duration = ot.dec.Info().Duration
	d.mu.Unlock()
	return true
}

func (l *audioLoop) closeTrack() {
	if l.cur == nil {
		return
	}
	if s, ok := l.cur.dec.(*pcmSource); ok {
		s.release()
	}
	l.cur.f.Close()
	l.cur = nil
}

// openTrackFile opens t and checks it is a file the decoder plays right;
// it plays from the cache file when cache (may be nil) has a good one.
func openTrackFile(t Track, cache *PCMCache) (*openTrack, error) {
	f, err := os.Open(t.Path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	dec, err := playableDecoder(f, t.Path, cache)
	if err != nil {
		f.Close()
		return nil, err
	}
	if s, ok := dec.(*pcmSource); ok {
		// The MP3 was only needed for its header: keep one descriptor.
		f.Close()
		f = s.f
	}
	return &openTrack{t: t, f: f, dec: dec}, nil
}

// playableDecoder refuses what is not a regular file or not a stream the
// decoder plays right (CheckPlayable), and starts the rest: from the
// cache file if it is good, else decoding live. The same file is refused
// or played whether or not it is cached.
func playableDecoder(f *os.File, path string, cache *PCMCache) (trackSource, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	info, err := mp3.ReadInfo(f, fi.Size())
	if err != nil {
		return nil, err
	}
	if err := CheckPlayable(info); err != nil {
		return nil, err
	}
	if cache != nil && cache.budget >= 0 {
		if cf, frames, err := cache.open(path, fi, info); err == nil {
			return newPCMSource(cf, frames, info), nil
		}
	}
	return newGaplessRecovering(f, fi.Size(), info)
}

// readRecovering reads from the decoder, turning a panic inside go-mp3 (an
// unmaintained library fed files from the outside) into a decode error:
// one bad file must not take the line down.
func readRecovering(dec trackSource, p []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("decoder panic at %s: %v", dec.Position().Round(time.Millisecond), r)
		}
	}()
	return dec.Read(p)
}

// newGaplessRecovering is NewGapless (which decodes the first frame)
// with go-mp3 panics turned into errors, as in readRecovering.
func newGaplessRecovering(r io.ReaderAt, size int64, info MP3Info) (g *Gapless, err error) {
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("decoder panic on the first frame: %v", r)
		}
	}()
	return NewGapless(r, size, info)
}

package player

// This file is the direct backend's audio goroutine: it takes what the
// Player wants, fills a block from the tracks (crossing into the next one
// sample-continuously), applies the gain, meters the level and writes the
// block to the sink.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// audioLoop is the state of Run's goroutine; only that goroutine touches
// it, so it needs no lock.
type audioLoop struct {
	d   *Direct
	pl  []Track
	gen uint64
	idx int // playlist index of cur, or of the next track to open
	cur *openTrack

	gain  *Gain
	block []byte
	fill  int  // bytes of block decoded
	ready bool // block full, gain applied, being written
	wpos  int  // bytes of a ready block already written
	src   float64

	sink          Sink
	sinkFrames    int64 // frames the current sink accepted
	sinkBackoff   backoff
	sinkRetryAt   time.Time
	sinkReplies   []chan error // restart requests answered once a sink opens
	sinkFailures  int          // failures since the sink was last healthy
	lastSinkErr   string       // last logged sink failure, to log changes only
	failures      int          // tracks in a row that produced no audio
	idleBackoff   backoff      // paces retries of a playlist with nothing playable
	lastProblem   string       // last logged "cannot play" reason, to log changes only
	totalFrames   uint64
	fade          fadeState // a switch that fades the track on air out (fade.go)
	replayReplies []chan error
}

func (l *audioLoop) run(ctx context.Context) {
	d := l.d
	for ctx.Err() == nil {
		w := d.takeWant()
		d.mu.Lock()
		reqs := d.requests
		d.requests = nil
		d.mu.Unlock()

		l.finishFade() // fade.go
		if w.playlistGen != l.gen {
			l.takePlaylist(w) // at once, or after a fade if it cuts the track on air (fade.go)
			l.gen = w.playlistGen
		}
		for _, r := range reqs {
			l.handle(r)
		}
		if w.next > 0 {
			l.closeTrack()
			l.advance()
		}
		if !l.ready && l.fill == 0 && l.fillTone() {
			l.writeBlock(ctx) // a test tone plays even while stopped (direct_tone.go)
			continue
		}
		if !w.playing {
			l.answerSinkReplies(nil)
			d.mu.Lock()
			d.st.LevelDBFS = SilenceDBFS // nothing is written while stopped
			d.mu.Unlock()
			d.setState(StateStopped, Fault{})
			l.wait(ctx, time.Time{})
			continue
		}
		if !l.ready && !l.fillBlock(ctx) {
			continue
		}
		l.writeBlock(ctx)
	}
}

// handle starts a recovery request; it is answered when done.
func (l *audioLoop) handle(r recoverRequest) {
	switch r.rung {
	case RungReplay:
		if l.cur != nil {
			l.d.log.Info("replaying track from its start", "track", l.cur.t.ID)
			l.closeTrack()
		}
		l.failures = 0
		l.idleBackoff.reset()
		l.replayReplies = append(l.replayReplies, r.reply)
	case RungRestartBackend:
		l.d.restarting.Store(false)
		l.d.log.Info("reopening the audio output on request")
		l.closeSink("restart requested")
		l.sinkBackoff.reset()
		l.sinkRetryAt = time.Time{}
		l.sinkReplies = append(l.sinkReplies, r.reply)
	}
}

// setPlaylist adopts a new playlist, keeping the track on air if it is
// still listed.
func (l *audioLoop) setPlaylist(pl []Track) {
	old, oldIdx := l.pl, l.idx
	l.pl = pl
	l.failures = 0
	l.idleBackoff.reset()
	if l.cur != nil {
		if i := indexOfTrack(pl, l.cur.t); i >= 0 {
			l.idx = i
			l.d.mu.Lock()
			l.d.st.Index = i
			l.d.mu.Unlock()
			return
		}
		l.d.log.Info("track on air was removed from the playlist; moving on", "track", l.cur.t.ID)
		l.closeTrack()
	}
	// Continue with the first track, from where the loop was, that the new
	// list still has.
	l.idx = 0
	for k := range old {
		if i := indexOfTrack(pl, old[(oldIdx+k)%len(old)]); i >= 0 {
			l.idx = i
			break
		}
	}
}

func indexOfTrack(pl []Track, t Track) int {
	for i, p := range pl {
		if p.ID == t.ID && (t.ID != "" || p.Path == t.Path) {
			return i
		}
	}
	return -1
}

func (l *audioLoop) advance() {
	if len(l.pl) > 0 {
		l.idx = (l.idx + 1) % len(l.pl)
	}
}

// fillBlock decodes into the block, crossing into the next track as
// needed so the seam between tracks is sample-continuous. It returns
// false when it had to wait (nothing playable) and the loop should look
// at its commands again.
func (l *audioLoop) fillBlock(ctx context.Context) bool {
	for l.fill < len(l.block) {
		if l.cur == nil {
			if !l.openNext(ctx) {
				return false
			}
			continue
		}
		n, err := readRecovering(l.cur.dec, l.block[l.fill:])
		l.fill += n
		if n > 0 && !l.cur.wrote {
			l.cur.wrote = true
			l.failures = 0
			l.idleBackoff.reset()
		}
		if err == nil {
			continue
		}
		t := l.cur.t
		switch {
		case errors.Is(err, io.EOF) && l.cur.dec.Truncated():
			info := l.cur.dec.Info()
			l.d.skips.add(t, fmt.Sprintf("truncated: the file ends at %s of %s", l.cur.dec.Position().Round(time.Millisecond), info.Duration.Round(time.Millisecond)))
		case errors.Is(err, io.EOF):
		default:
			l.d.skips.add(t, err.Error())
		}
		if !l.cur.wrote {
			l.failures++
		}
		l.closeTrack()
		l.advance()
	}
	l.src = LevelDBFS(l.block)
	l.gain.Set(l.d.wantNow().volume)
	l.gain.Apply(l.block)
	l.applyFade()
	l.ready = true
	l.wpos = 0
	return true
}

// writeBlock writes the ready block, opening the sink if needed. On a
// sink failure it keeps the unwritten rest, so no sample is lost or
// repeated across a reopen.
func (l *audioLoop) writeBlock(ctx context.Context) {
	d := l.d
	for l.wpos < len(l.block) {
		if l.sink == nil && !l.openSinkWithBackoff(ctx) {
			return
		}
		n, err := l.sink.Write(l.block[l.wpos:])
		l.wpos += max(0, min(n, len(l.block)-l.wpos))
		if err != nil {
			l.sinkFailed(fmt.Errorf("sink write: %w", err))
			return
		}
	}
	frames := len(l.block) / BytesPerFrame
	l.sinkFrames += int64(frames)
	if l.sinkFrames >= sinkHealthy && (l.sinkBackoff.current() != 0 || l.lastSinkErr != "") {
		l.sinkBackoff.reset()
		if l.lastSinkErr != "" {
			d.log.Info("audio output recovered", "failed_attempts", l.sinkFailures)
		}
		l.sinkFailures = 0
		l.lastSinkErr = ""
	}
	l.totalFrames += uint64(frames)
	level := LevelDBFS(l.block) // one 100 ms block is the ~100 ms reading
	now := d.now()
	d.mu.Lock()
	d.st.State = StatePlaying
	d.st.Fault = Fault{}
	d.st.Frames = l.totalFrames
	d.st.LevelDBFS = level
	d.st.SourceSilent = l.src < silentDBFS
	if l.src >= silentDBFS {
		// Audio left for the output: a deliberately low volume is the
		// admin's choice, not a silent fault.
		d.st.LastAudio = now
	}
	if l.cur != nil {
		d.st.Position = l.cur.dec.Position()
	}
	d.mu.Unlock()
	l.lastProblem = ""
	l.answerReplay(nil) // audio reached the output again
	l.ready = false
	l.fill = 0
	l.wpos = 0
}

func (l *audioLoop) answerReplay(err error) {
	for _, c := range l.replayReplies {
		c <- err
	}
	l.replayReplies = nil
}

// problem logs why nothing plays, once per distinct reason.
func (l *audioLoop) problem(msg string) {
	if msg != l.lastProblem {
		l.d.log.Warn(msg)
		l.lastProblem = msg
	}
}

// wait sleeps until the deadline (zero: indefinitely), a change of what
// is wanted, or ctx.
func (l *audioLoop) wait(ctx context.Context, until time.Time) {
	var timeout <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-l.d.wakes:
	case <-timeout:
	}
}

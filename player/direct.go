package player

// This file is the direct backend: one audio goroutine decodes the
// playlist gaplessly, applies the volume, meters the level and writes the
// PCM to a sink that paces it like a sound card. It owns its faults: a
// bad file is skipped, a dead sink is reopened with backoff, and nothing
// short of ctx ending stops the loop.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mohproject/moh/internal/mp3"
)

// DirectOptions configure a Direct backend.
type DirectOptions struct {
	Logger *slog.Logger
	// OpenSink opens the output. It is called again, with backoff, after
	// the sink fails.
	OpenSink func(ctx context.Context) (Sink, error)
	// Now is the clock for status timestamps; nil means time.Now.
	Now func() time.Time
	// BlockFrames is the write size in frames; 0 means 2205 (50 ms).
	BlockFrames int
	// SinkBackoff and SinkBackoffMax bound the wait before reopening a
	// failed sink: it starts at SinkBackoff and doubles up to
	// SinkBackoffMax. Zero means 250 ms and 30 s.
	SinkBackoff, SinkBackoffMax time.Duration
	// IdleBackoff and IdleBackoffMax bound the wait before trying the
	// playlist again when no track in it is playable. Zero means 1 s and
	// 30 s.
	IdleBackoff, IdleBackoffMax time.Duration
}

// Tuning of the audio loop.
const (
	defaultBlockFrames = SampleRate / 20 // 50 ms: small enough for prompt commands, large enough to be cheap
	// silentDBFS is where a block counts as silent: below any music but
	// above the dither and codec noise floor of a silent passage.
	silentDBFS = -70.0
	// sinkHealthy is how much audio a reopened sink must take before its
	// backoff resets, so a sink that dies right after opening is not
	// reopened four times a second forever.
	sinkHealthy = 2 * SampleRate
	maxSkipped  = 20
)

// Direct plays MP3 files itself: go-mp3, trimmed to the exact encoded
// samples (see Gapless), into a Sink.
//
// Stop pauses: the loop stops writing (the sound card underruns and goes
// quiet) but keeps the sink open and the track where it was, so Play
// resumes on the next sample.
type Direct struct {
	log      *slog.Logger
	openSink func(ctx context.Context) (Sink, error)
	now      func() time.Time
	opt      DirectOptions
	volume   atomic.Int32 // the audio loop's Gain glides to it
	// restarting is set while Recover closes the sink on purpose, so the
	// write that fails because of it is not logged as an output fault.
	restarting atomic.Bool

	wake chan struct{} // buffered 1: something for the audio goroutine changed

	mu       sync.Mutex
	running  bool
	playlist []Track
	plGen    uint64
	playing  bool
	next     bool
	requests []recoverRequest
	sink     Sink // the open sink, so Recover can unblock a stuck Write
	st       BackendStatus
}

type recoverRequest struct {
	rung  Rung
	reply chan error // buffered 1
}

// NewDirect returns a stopped Direct backend; Run starts its loop.
func NewDirect(o DirectOptions) *Direct {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BlockFrames <= 0 {
		o.BlockFrames = defaultBlockFrames
	}
	if o.SinkBackoff <= 0 {
		o.SinkBackoff = 250 * time.Millisecond
	}
	if o.SinkBackoffMax <= 0 {
		o.SinkBackoffMax = 30 * time.Second
	}
	if o.IdleBackoff <= 0 {
		o.IdleBackoff = time.Second
	}
	if o.IdleBackoffMax <= 0 {
		o.IdleBackoffMax = 30 * time.Second
	}
	d := &Direct{
		log:      o.Logger.With("component", "direct"),
		openSink: o.OpenSink,
		now:      o.Now,
		opt:      o,
		wake:     make(chan struct{}, 1),
		st:       BackendStatus{State: StateStarting, Index: -1, LevelDBFS: SilenceDBFS},
	}
	d.volume.Store(int32(DefaultSettings.Volume))
	return d
}

// Name is "direct".
func (d *Direct) Name() string { return "direct" }

func (d *Direct) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// SetPlaylist replaces the playlist. The track on air plays on without a
// gap if its ID is still in the list (and the one after it follows);
// otherwise the next surviving track starts at once.
func (d *Direct) SetPlaylist(tracks []Track) {
	d.mu.Lock()
	d.playlist = append([]Track(nil), tracks...)
	d.plGen++
	d.mu.Unlock()
	d.poke()
}

// Play starts or resumes playback.
func (d *Direct) Play() { d.setPlaying(true) }

// Stop pauses playback (see Direct).
func (d *Direct) Stop() { d.setPlaying(false) }

func (d *Direct) setPlaying(on bool) {
	d.mu.Lock()
	d.playing = on
	d.mu.Unlock()
	d.poke()
}

// Next cuts to the next track.
func (d *Direct) Next() {
	d.mu.Lock()
	d.next = true
	d.mu.Unlock()
	d.poke()
}

// SetVolume glides to v (0..100) over a few ms; see Gain. Set before Run,
// it is the starting volume, with no glide.
func (d *Direct) SetVolume(v int) { d.volume.Store(int32(min(max(v, 0), 100))) }

// Status returns a snapshot.
func (d *Direct) Status() BackendStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.st
	if st.Track != nil {
		t := *st.Track
		st.Track = &t
	}
	st.Skipped = append([]Skip(nil), d.st.Skipped...)
	return st
}

// Recover performs a rung: RungReplay restarts the current track from its
// start (and resumes playback if it was stopped) and returns once audio
// reached the output again; RungRestartBackend closes the sink (which
// unblocks a Write stuck in it) and returns once a new one is open. Both
// give up when ctx ends. Other rungs return ErrRungUnsupported.
func (d *Direct) Recover(ctx context.Context, rung Rung) error {
	if rung != RungReplay && rung != RungRestartBackend {
		return fmt.Errorf("direct: %s: %w", rung, ErrRungUnsupported)
	}
	req := recoverRequest{rung: rung, reply: make(chan error, 1)}
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return fmt.Errorf("direct: %s: backend is not running", rung)
	}
	if rung == RungReplay {
		// The watchdog replays only when the admin wants playback, so a
		// backend that believes it is stopped has lost a Play: resume.
		d.playing = true
	}
	d.requests = append(d.requests, req)
	sink := d.sink
	d.mu.Unlock()
	if rung == RungRestartBackend && sink != nil {
		d.restarting.Store(true)
		// The audio goroutine may be blocked in Write on a stalled sink:
		// closing it from here is what makes that Write return.
		if err := sink.Close(); err != nil {
			d.log.Warn("close sink for restart", "err", err)
		}
	}
	d.poke()
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("direct: %s: %w", rung, ctx.Err())
	}
}

// Run plays until ctx is done; it returns nil then. It returns an error
// only if the backend is misconfigured or already running.
func (d *Direct) Run(ctx context.Context) error {
	if d.openSink == nil {
		return errors.New("direct: no OpenSink configured")
	}
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("direct: already running")
	}
	d.running = true
	d.mu.Unlock()
	l := &audioLoop{
		d:           d,
		gain:        NewGain(int(d.volume.Load())),
		block:       make([]byte, d.opt.BlockFrames*BytesPerFrame),
		gen:         math.MaxUint64,
		totalFrames: d.Status().Frames, // only grows, even across a second Run
		idleBackoff: d.opt.IdleBackoff,
		levels:      [2]float64{SilenceDBFS, SilenceDBFS},
	}
	defer func() {
		stopped := errors.New("direct: backend stopped")
		l.answerReplay(stopped)
		l.answerSinkReplies(stopped)
		l.closeTrack()
		l.closeSink("shutting down")
		d.mu.Lock()
		d.running = false
		reqs := d.requests
		d.requests = nil
		d.st.State = StateStopped
		d.mu.Unlock()
		for _, r := range reqs {
			r.reply <- stopped
		}
	}()
	l.run(ctx)
	return nil
}

// openTrack is the track being decoded.
type openTrack struct {
	t     Track
	f     *os.File
	dec   *Gapless
	wrote bool // produced audio
}

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
	sinkBackoff   time.Duration
	sinkRetryAt   time.Time
	sinkReplies   []chan error // restart requests answered once a sink opens
	sinkFailures  int          // failures since the sink was last healthy
	lastSinkErr   string       // last logged sink failure, to log changes only
	failures      int          // tracks in a row that produced no audio
	idleBackoff   time.Duration
	levels        [2]float64 // the last two blocks' output level, for a ~100 ms reading
	lastProblem   string     // last logged "cannot play" reason, to log changes only
	totalFrames   uint64
	replayReplies []chan error
}

func (l *audioLoop) run(ctx context.Context) {
	d := l.d
	for ctx.Err() == nil {
		d.mu.Lock()
		playing, next := d.playing, d.next
		d.next = false
		var pl []Track
		gen := d.plGen
		if gen != l.gen {
			pl = d.playlist
		}
		reqs := d.requests
		d.requests = nil
		d.mu.Unlock()

		if gen != l.gen {
			l.setPlaylist(pl)
			l.gen = gen
		}
		for _, r := range reqs {
			l.handle(r)
		}
		if next {
			l.closeTrack()
			l.advance()
		}
		if !playing {
			l.answerSinkReplies(nil)
			l.levels = [2]float64{SilenceDBFS, SilenceDBFS}
			d.mu.Lock()
			d.st.LevelDBFS = SilenceDBFS // nothing is written while stopped
			d.mu.Unlock()
			d.setState(StateStopped, "")
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
		l.idleBackoff = l.d.opt.IdleBackoff
		l.replayReplies = append(l.replayReplies, r.reply)
	case RungRestartBackend:
		l.d.restarting.Store(false)
		l.d.log.Info("reopening the audio output on request")
		l.closeSink("restart requested")
		l.sinkBackoff = 0
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
	l.idleBackoff = l.d.opt.IdleBackoff
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
			l.idleBackoff = l.d.opt.IdleBackoff
		}
		if err == nil {
			continue
		}
		t := l.cur.t
		switch {
		case errors.Is(err, io.EOF) && l.cur.dec.Truncated():
			info := l.cur.dec.Info()
			l.skip(t, fmt.Sprintf("truncated: the file ends at %s of %s", l.cur.dec.Position().Round(time.Millisecond), info.Duration.Round(time.Millisecond)))
		case errors.Is(err, io.EOF):
		default:
			l.skip(t, err.Error())
		}
		if !l.cur.wrote {
			l.failures++
		}
		l.closeTrack()
		l.advance()
	}
	l.src = LevelDBFS(l.block)
	l.gain.Set(int(l.d.volume.Load()))
	l.gain.Apply(l.block)
	l.ready = true
	l.wpos = 0
	return true
}

// readRecovering reads from the decoder, turning a panic inside go-mp3 (an
// unmaintained library fed files from the outside) into a decode error:
// one bad file must not take the line down.
func readRecovering(dec *Gapless, p []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("decoder panic at %s: %v", dec.Position().Round(time.Millisecond), r)
		}
	}()
	return dec.Read(p)
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
		d.setState(StateStopped, "empty playlist")
		l.wait(ctx, time.Time{})
		return false
	}
	if l.failures >= len(l.pl) {
		msg := fmt.Sprintf("no playable track: all %d in the playlist were refused; retrying in %s", len(l.pl), l.idleBackoff)
		l.problem(msg)
		d.setState(StateFailed, "no playable track")
		l.answerReplay(errors.New("direct: replay: no playable track"))
		l.wait(ctx, time.Now().Add(l.idleBackoff))
		l.idleBackoff = min(2*l.idleBackoff, d.opt.IdleBackoffMax)
		l.failures = 0
		return false
	}
	t := l.pl[l.idx]
	ot, err := openTrackFile(t)
	if err != nil {
		l.skip(t, err.Error())
		l.failures++
		l.advance()
		return true
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

// openTrackFile opens t and checks it is a file the decoder plays right.
func openTrackFile(t Track) (*openTrack, error) {
	f, err := os.Open(t.Path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
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
	dec, err := newGaplessRecovering(f, fi.Size(), info)
	if err != nil {
		return nil, err
	}
	ok = true
	return &openTrack{t: t, f: f, dec: dec}, nil
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

func (l *audioLoop) closeTrack() {
	if l.cur == nil {
		return
	}
	l.cur.f.Close()
	l.cur = nil
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
	if l.sinkFrames >= sinkHealthy && (l.sinkBackoff != 0 || l.lastSinkErr != "") {
		l.sinkBackoff = 0
		if l.lastSinkErr != "" {
			d.log.Info("audio output recovered", "failed_attempts", l.sinkFailures)
		}
		l.sinkFailures = 0
		l.lastSinkErr = ""
	}
	l.totalFrames += uint64(frames)
	out := LevelDBFS(l.block)
	l.levels[0], l.levels[1] = l.levels[1], out
	now := d.now()
	d.mu.Lock()
	d.st.State = StatePlaying
	d.st.Fault = ""
	d.st.Frames = l.totalFrames
	d.st.LevelDBFS = powerMeanDBFS(l.levels[0], l.levels[1])
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

// powerMeanDBFS averages two levels as power, giving the level of the two
// blocks together.
func powerMeanDBFS(a, b float64) float64 {
	p := (math.Pow(10, a/10) + math.Pow(10, b/10)) / 2
	if p <= 0 {
		return SilenceDBFS
	}
	return max(10*math.Log10(p), SilenceDBFS)
}

// openSinkWithBackoff opens the sink, waiting out the backoff of an
// earlier failure first. It returns false if it did not get a sink (the
// loop then looks at its commands and comes back).
func (l *audioLoop) openSinkWithBackoff(ctx context.Context) bool {
	d := l.d
	if !l.sinkRetryAt.IsZero() && time.Now().Before(l.sinkRetryAt) {
		l.wait(ctx, l.sinkRetryAt)
		if time.Now().Before(l.sinkRetryAt) {
			return false // woken early: commands first
		}
	}
	s, err := d.openSink(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		l.sinkFailed(fmt.Errorf("sink open: %w", err))
		return false
	}
	l.sink = s
	l.sinkFrames = 0
	l.sinkRetryAt = time.Time{}
	d.mu.Lock()
	d.sink = s
	d.mu.Unlock()
	if l.lastSinkErr == "" {
		d.log.Info("audio output opened")
	} else {
		d.log.Debug("audio output reopened", "failed_attempts", l.sinkFailures)
	}
	l.answerSinkReplies(nil)
	return true
}

// sinkFailed records a sink fault and schedules the reopen.
func (l *audioLoop) sinkFailed(err error) {
	d := l.d
	l.closeSink("failed")
	if d.restarting.Load() {
		return // Recover closed it; its request reopens it at once
	}
	if l.sinkBackoff == 0 {
		l.sinkBackoff = d.opt.SinkBackoff
	} else {
		l.sinkBackoff = min(2*l.sinkBackoff, d.opt.SinkBackoffMax)
	}
	l.sinkRetryAt = time.Now().Add(l.sinkBackoff)
	l.sinkFailures++
	if msg := err.Error(); msg != l.lastSinkErr {
		d.log.Error("audio output failed; reopening", "err", err, "retry_in", l.sinkBackoff)
		l.lastSinkErr = msg
	} else {
		// The same failure again: the journal (on flash) has it already.
		d.log.Debug("audio output failed again", "err", err, "attempt", l.sinkFailures, "retry_in", l.sinkBackoff)
	}
	d.setState(StateFailed, err.Error())
	l.answerSinkReplies(err)
}

func (l *audioLoop) closeSink(why string) {
	if l.sink == nil {
		return
	}
	d := l.d
	d.mu.Lock()
	d.sink = nil
	d.mu.Unlock()
	if err := l.sink.Close(); err != nil && !errors.Is(err, ErrSinkClosed) {
		d.log.Warn("close sink", "why", why, "err", err)
	}
	l.sink = nil
}

func (l *audioLoop) answerSinkReplies(err error) {
	for _, c := range l.sinkReplies {
		c <- err
	}
	l.sinkReplies = nil
}

func (l *audioLoop) answerReplay(err error) {
	for _, c := range l.replayReplies {
		c <- err
	}
	l.replayReplies = nil
}

// skip records a track that could not be played (or not fully), logging
// at WARN only the first time a track fails for a reason, so a bad file in
// a loop does not write to the journal every lap.
func (l *audioLoop) skip(t Track, reason string) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	sk := Skip{TrackID: t.ID, Name: t.Name, Reason: reason, At: d.now()}
	for i, s := range d.st.Skipped {
		if s.TrackID == t.ID {
			d.st.Skipped = append(d.st.Skipped[:i], d.st.Skipped[i+1:]...)
			if s.Reason == reason {
				d.st.Skipped = append(d.st.Skipped, sk)
				d.log.Debug("skipping track again", "track", t.ID, "reason", reason)
				return
			}
			break
		}
	}
	d.st.Skipped = append(d.st.Skipped, sk)
	if len(d.st.Skipped) > maxSkipped {
		d.st.Skipped = d.st.Skipped[len(d.st.Skipped)-maxSkipped:]
	}
	d.log.Warn("skipping track", "track", t.ID, "name", t.Name, "path", t.Path, "reason", reason)
}

// problem logs why nothing plays, once per distinct reason.
func (l *audioLoop) problem(msg string) {
	if msg != l.lastProblem {
		l.d.log.Warn(msg)
		l.lastProblem = msg
	}
}

// wait sleeps until the deadline (zero: indefinitely), a command or ctx.
func (l *audioLoop) wait(ctx context.Context, until time.Time) {
	var timeout <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-l.d.wake:
	case <-timeout:
	}
}

func (d *Direct) setState(s State, fault string) {
	d.mu.Lock()
	d.st.State = s
	d.st.Fault = fault
	d.mu.Unlock()
}

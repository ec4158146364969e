package player

// This file is the direct backend's public face: its options and the
// Backend methods. One audio goroutine (direct_loop.go) decodes the
// playlist gaplessly (direct_track.go), applies the volume, meters the
// level and writes the PCM to a sink that paces it like a sound card
// (direct_sink.go). It owns its faults: a bad file is skipped, a dead sink
// is reopened with backoff, and nothing short of ctx ending stops the loop.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DirectOptions configure a Direct backend.
type DirectOptions struct {
	Logger *slog.Logger
	// OpenSink opens the output. It is called again, with backoff, after
	// the sink fails.
	OpenSink func(ctx context.Context) (Sink, error)
	// Now is the clock for status timestamps; nil means time.Now.
	Now func() time.Time
	// BlockFrames is the write size in frames; 0 means 4410 (100 ms).
	BlockFrames int
	// SinkBackoff and SinkBackoffMax bound the wait before reopening a
	// failed sink: it starts at SinkBackoff and doubles up to
	// SinkBackoffMax. Zero means 250 ms and 30 s.
	SinkBackoff, SinkBackoffMax time.Duration
	// IdleBackoff and IdleBackoffMax bound the wait before trying the
	// playlist again when no track in it is playable. Zero means 1 s and
	// 30 s.
	IdleBackoff, IdleBackoffMax time.Duration
	// PCMCache, if set, holds the tracks decoded once, which the loop
	// plays instead of decoding again (pcm_cache.go).
	PCMCache *PCMCache
	// Outputs reports every output (LineOutputs.Statuses); nil: none.
	Outputs func() []OutputStatus
	// OnTone is told of every test tone (direct_tone.go), so the
	// telephone signal plays it too; nil: none.
	OnTone func(ToneRequest)
}

// Tuning of the audio loop.
const (
	defaultBlockFrames = SampleRate / 10 // 100 ms: well inside the 300 ms lead, and each block costs the runtime a wake-up
	// silentDBFS is where a block counts as silent: below any music but
	// above the dither and codec noise floor of a silent passage.
	silentDBFS = -70.0
	// sinkHealthy is how much audio a reopened sink must take before its
	// backoff resets, so a sink that dies right after opening is not
	// reopened four times a second forever.
	sinkHealthy = 2 * SampleRate
)

// Direct plays MP3 files itself: go-mp3, trimmed to the exact encoded
// samples (see Gapless), into a Sink.
//
// SetPlaylist keeps the track on air playing without a gap if its ID is
// still in the list (and the one after it follows); otherwise the next
// surviving track starts at once. Stop pauses: the loop stops writing (the
// sound card underruns and goes quiet) but keeps the sink open and the
// track where it was, so Play resumes on the next sample. SetVolume glides
// to the new volume over a few ms (see Gain); set before Run, it is the
// starting volume, with no glide.
type Direct struct {
	*wanted // the Backend's SetPlaylist, Play, Stop, Next, SetVolume

	log      *slog.Logger
	openSink func(ctx context.Context) (Sink, error)
	now      func() time.Time
	opt      DirectOptions
	skips    *skipLog
	// restarting is set while Recover closes the sink on purpose, so the
	// write that fails because of it is not logged as an output fault.
	restarting atomic.Bool

	mu       sync.Mutex
	running  bool
	requests []recoverRequest
	sink     Sink // the open sink, so Recover can unblock a stuck Write
	st       BackendStatus
	tone     toneState // a test tone replacing the music (direct_tone.go)
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
	log := o.Logger.With("component", "direct")
	return &Direct{
		log:      log,
		openSink: o.OpenSink,
		now:      o.Now,
		opt:      o,
		wanted:   newWanted(DefaultSettings.Volume),
		skips:    newSkipLog(log, o.Now),
		st:       BackendStatus{State: StateStarting, Index: -1, LevelDBFS: SilenceDBFS},
	}
}

// Name is "direct".
func (d *Direct) Name() string { return "direct" }

// Status returns a snapshot.
func (d *Direct) Status() BackendStatus {
	d.mu.Lock()
	st := d.st
	d.mu.Unlock()
	if st.Track != nil {
		t := *st.Track
		st.Track = &t
	}
	st.Skipped = d.skips.snapshot()
	if cs, ok := d.opt.PCMCache.Status(); ok {
		st.PCMCache = &cs
	}
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
		d.setPlaying(true)
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
	d.wake()
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
		gain:        NewGain(d.wantNow().volume),
		block:       make([]byte, d.opt.BlockFrames*BytesPerFrame),
		gen:         math.MaxUint64,
		totalFrames: d.Status().Frames, // only grows, even across a second Run
		sinkBackoff: backoff{min: d.opt.SinkBackoff, max: d.opt.SinkBackoffMax},
		idleBackoff: backoff{min: d.opt.IdleBackoff, max: d.opt.IdleBackoffMax},
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

// setState publishes the loop's state and fault.
func (d *Direct) setState(s State, f Fault) {
	d.mu.Lock()
	d.st.State = s
	d.st.Fault = f
	d.mu.Unlock()
}

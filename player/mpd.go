package player

// This file is the MPD backend's public face: its options and the Backend
// methods, which only record what is wanted and read what was seen. The
// one goroutine that talks to MPD is the owner loop (mpd_owner.go); it
// keeps MPD's queue in sync (mpd_queue.go), owns MPD's whole player state
// (mpd_drift.go), climbs the recovery rungs and runs the MPD process
// (mpd_recover.go, mpd_proc.go), and covers an MPD mohd does not own
// (mpd_external.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MPDOptions configure the MPD backend.
type MPDOptions struct {
	Logger *slog.Logger
	// Output is where the owned MPD sends its audio.
	Output Output
	// RenditionDir is the library's folder of house-format renditions,
	// the files the Player's tracks point at. The owned MPD plays tracks
	// by absolute path and does not need it; an MPD reached over TCP
	// plays them by their path relative to it, so it must be that MPD's
	// music_directory.
	RenditionDir string
	// RunDir holds what the owned MPD writes (config, socket, database,
	// the level FIFO): tmpfs on the appliance.
	RunDir string
	// Binary is the mpd executable; default "mpd" from PATH.
	Binary string
	// Addr, when set, is an MPD mohd does not own: "host:port" or the
	// path of a unix socket. Then RestartCommand is the restart rung.
	Addr           string
	RestartCommand []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Crossfade is MPD's crossfade in seconds; 0 (the default) keeps the
	// loop gapless. mohd restores it whenever another client changes it.
	Crossfade int
	// CallTimeout bounds every MPD command (default 1.5 s); PollInterval
	// is how often status is read (default 500 ms, well under MPD's 60 s
	// connection_timeout); StartTimeout bounds an MPD start (default 15 s).
	CallTimeout  time.Duration
	PollInterval time.Duration
	StartTimeout time.Duration
}

// MPD is the backend that plays through Music Player Daemon. mohd is the
// source of truth for MPD's whole player state — queue, outputs, repeat,
// single, random, consume, crossfade, volume, play state: it rebuilds it
// after every MPD restart, keeps the queue in sync as the playlist
// changes, and reports any change another client makes as a fault that
// the watchdog's replay rung undoes (see drift). MPD's software mixer
// ramps nothing on SetVolume, but it applies the change between chunks,
// so there is no click.
type MPD struct {
	*wanted // the Backend's SetPlaylist, Play, Stop, Next, SetVolume

	o       MPDOptions
	log     *slog.Logger
	now     func() time.Time
	network string
	addr    string
	owned   bool
	meter   *levelMeter // what the owned MPD actually played
	skips   *skipLog
	reqs    chan mpdRecoverReq
	// lostTrack is set when MPD logged a track it could not open.
	lostTrack atomic.Bool
	pid       atomic.Int64 // of the MPD mohd owns, 0 when none runs

	mu   sync.Mutex
	seen mpdSeen
	// lineFailed is MPD's last complaint that it could not open the line
	// output, and when: MPD then plays on into the level output alone and
	// says nothing in its status (measured, alsa:hw:9,0).
	lineFailed   string
	lineFailedAt time.Time
}

// mpdSeen is what the owner goroutine last saw of MPD.
type mpdSeen struct {
	state     State
	fault     Fault
	track     *Track
	index     int
	elapsed   time.Duration
	duration  time.Duration
	frames    uint64 // external mode: estimated from elapsed
	lastAudio time.Time
}

type mpdRecoverReq struct {
	ctx   context.Context
	rung  Rung
	reply chan error
}

// NewMPD returns the MPD backend; call Run to start it.
func NewMPD(o MPDOptions) (*MPD, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Binary == "" {
		o.Binary = "mpd"
	}
	if o.CallTimeout <= 0 {
		// A local MPD answers in milliseconds; 1.5 s plus one poll keeps
		// a frozen MPD's detection under the 3 s target.
		o.CallTimeout = 1500 * time.Millisecond
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	if o.Crossfade < 0 {
		return nil, fmt.Errorf("mpd backend: crossfade %d s is negative", o.Crossfade)
	}
	if o.Addr == "" {
		if o.RunDir == "" {
			return nil, errors.New("mpd backend: a run dir is required")
		}
		if _, err := (mpdConfig{RunDir: o.RunDir, Output: o.Output}).render(); err != nil {
			return nil, err
		}
		if sock := filepath.Join(o.RunDir, mpdSocketName); len(sock) > 107 {
			return nil, fmt.Errorf("mpd backend: socket path %s is longer than a unix socket allows", sock)
		}
	} else if o.RenditionDir == "" && !strings.HasPrefix(o.Addr, "/") {
		return nil, errors.New("mpd backend: an MPD reached over TCP needs the rendition dir it shares with mohd")
	}
	log := o.Logger.With("component", "mpd")
	m := &MPD{
		o:      o,
		log:    log,
		now:    o.Now,
		owned:  o.Addr == "",
		wanted: newWanted(-1),
		skips:  newSkipLog(log, o.Now),
		reqs:   make(chan mpdRecoverReq),
		seen:   mpdSeen{state: StateStarting, index: -1},
	}
	switch {
	case m.owned:
		m.network, m.addr = "unix", filepath.Join(o.RunDir, mpdSocketName)
		m.meter = newLevelMeter(o.Now)
	case strings.HasPrefix(o.Addr, "/"):
		m.network, m.addr = "unix", o.Addr
	default:
		m.network, m.addr = "tcp", o.Addr
	}
	return m, nil
}

// Name implements Backend.
func (m *MPD) Name() string { return "mpd" }

// PID is the process id of the MPD mohd owns, 0 when none runs.
func (m *MPD) PID() int { return int(m.pid.Load()) }

// Status implements Backend.
func (m *MPD) Status() BackendStatus {
	m.mu.Lock()
	s := m.seen
	m.mu.Unlock()
	bs := BackendStatus{
		State:    s.state,
		Track:    s.track,
		Index:    s.index,
		Position: s.elapsed,
		Duration: s.duration,
		Fault:    s.fault,
		Skipped:  m.skips.snapshot(),
		// Silence is what the admin asked for at volume 0.
		SourceSilent: m.wantNow().volume == 0,
	}
	if m.meter != nil {
		bs.Frames, bs.LevelDBFS, bs.LastAudio = m.meter.snapshot()
	} else {
		// An MPD mohd does not own cannot be listened to: progress of
		// elapsed stands in for frames, and the level is unknown.
		bs.Frames, bs.LevelDBFS, bs.LastAudio = s.frames, SilenceDBFS, s.lastAudio
	}
	return bs
}

// Recover implements Backend: it performs one rung in the goroutine that
// owns the MPD connection.
func (m *MPD) Recover(ctx context.Context, rung Rung) error {
	r := mpdRecoverReq{ctx: ctx, rung: rung, reply: make(chan error, 1)}
	select {
	case m.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("mpd recover %s: %w", rung, ctx.Err())
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("mpd recover %s: %w", rung, ctx.Err())
	}
}

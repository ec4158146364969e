package player

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Settings is what the admin chose and what survives a power cut.
type Settings struct {
	Volume  int  `json:"volume"`  // 0..100
	Playing bool `json:"playing"` // wanted state
}

// DefaultSettings is used when no state was saved yet: playing, because
// an appliance that comes up silent after a power cut is broken.
var DefaultSettings = Settings{Volume: 80, Playing: true}

// Options configure a Player.
type Options struct {
	Backend Backend
	Logger  *slog.Logger
	// Fallback is played when the playlist is empty, so the line is never
	// silent.
	Fallback Track
	Settings Settings
	// Save persists Settings when the admin changes them, before they are
	// made live; an error refuses the change. Calls never overlap. Nil:
	// not saved.
	Save func(Settings) error
	// Events receives faults, recoveries and admin actions. Nil: a new
	// log of 200 events.
	Events *EventLog
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Degraded lists problems beside the player that do not silence the
	// line (disk nearly full, fleet link down), for the health model.
	// Nil: none.
	Degraded func() []string
}

// Status is the player as the API, the page and monitoring see it.
type Status struct {
	BackendStatus
	Backend        string         `json:"backend"`
	Wanted         State          `json:"wanted"`
	Volume         int            `json:"volume"`
	PlaylistLength int            `json:"playlist_length"`
	Fallback       bool           `json:"fallback"` // the built-in track is on: the playlist is empty or every track was refused
	Uptime         time.Duration  `json:"uptime_ns"`
	Watchdog       WatchdogStatus `json:"watchdog"`
	Health         Health         `json:"health"` // the one health verdict (AssessHealth)
	// Outputs are the direct backend's outputs (outputs.go); absent with
	// MPD, which owns its own.
	Outputs []OutputStatus `json:"outputs,omitempty"`
}

// Player owns a backend and the admin's wanted settings.
type Player struct {
	backend  Backend
	log      *slog.Logger
	fallback Track
	save     func(Settings) error
	events   *EventLog
	now      func() time.Time
	started  time.Time
	watchdog *Watchdog
	degraded func() []string

	// changeMu orders admin changes: each is saved and made live before
	// the next starts. It is held across the save (disk I/O), so the audio
	// path and Status never take it; they take mu.
	changeMu sync.Mutex
	mu       sync.Mutex
	settings Settings
	playlist []Track
	// refusedAll is set while every track of the playlist was refused by
	// the backend and the fallback plays instead, until the playlist
	// changes.
	refusedAll bool
}

// New returns a Player; call Run to start playback.
func New(o Options) *Player {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Events == nil {
		o.Events = NewEventLog(200, o.Now)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Player{
		backend:  o.Backend,
		log:      o.Logger.With("component", "player"),
		fallback: o.Fallback,
		save:     o.Save,
		events:   o.Events,
		now:      o.Now,
		degraded: o.Degraded,
		settings: clampSettings(o.Settings),
		started:  o.Now(),
	}
	return p
}

func clampSettings(s Settings) Settings {
	s.Volume = clampVolume(s.Volume)
	return s
}

// SetWatchdog names the watchdog whose verdict Status and AudioFlowing
// report. The caller runs it (Watchdog.Run) beside Player.Run: it is a
// part of the daemon of its own, whose exit rung ends the daemon.
func (p *Player) SetWatchdog(w *Watchdog) { p.watchdog = w }

// Events is the player's event log.
func (p *Player) Events() *EventLog { return p.events }

// Run plays until ctx is done: the backend and the guard that switches to
// the built-in track when the backend refuses every track. It does not run
// the watchdog (see SetWatchdog).
func (p *Player) Run(ctx context.Context) error {
	// Under changeMu, so an admin change arriving now is not undone by
	// applying the settings it replaced.
	p.changeMu.Lock()
	p.mu.Lock()
	s := p.settings
	p.backend.SetPlaylist(p.effectivePlaylist())
	p.mu.Unlock()
	p.backend.SetVolume(s.Volume)
	if s.Playing {
		p.backend.Play()
	} else {
		p.backend.Stop()
	}
	p.changeMu.Unlock()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.backend.Run(ctx) })
	g.Go(func() error { return p.guardFallback(ctx) })
	return g.Wait()
}

// guardFallback keeps the line from going silent when the backend refuses
// every track of the playlist (all garbled, unreadable or of a format it
// cannot play): the built-in track plays until the playlist changes.
func (p *Player) guardFallback(ctx context.Context) error {
	return every(ctx, 500*time.Millisecond, func() error {
		// FaultNoTrack with a playlist to play means every track of it
		// was refused: the backend is handed the built-in track only
		// when the playlist is empty, and then nothing is left to refuse.
		if p.backend.Status().Fault.Class != FaultNoTrack {
			return nil
		}
		p.mu.Lock()
		if p.refusedAll || p.fallback.Path == "" || len(p.playlist) == 0 {
			p.mu.Unlock()
			return nil
		}
		p.refusedAll = true
		n := len(p.playlist)
		p.mu.Unlock()
		p.log.Error("every track was refused: playing the built-in track until the playlist changes", "tracks", n)
		p.events.Add(Event{Kind: "fault", Fault: FaultNoTrack,
			Message: fmt.Sprintf("all %d tracks were refused; the built-in track plays until the playlist changes", n)})
		p.backend.SetPlaylist([]Track{p.fallback})
		return nil
	})
}

// effectivePlaylist is the playlist, or the fallback track when it is
// empty. Callers hold p.mu.
func (p *Player) effectivePlaylist() []Track {
	if (len(p.playlist) == 0 || p.refusedAll) && p.fallback.Path != "" {
		return []Track{p.fallback}
	}
	return append([]Track(nil), p.playlist...)
}

// SetPlaylist replaces the playlist without interrupting the track on air
// (unless it was removed). An empty playlist plays the fallback track.
func (p *Player) SetPlaylist(tracks []Track) {
	p.mu.Lock()
	p.playlist = append([]Track(nil), tracks...)
	p.refusedAll = false // give the new playlist its chance
	pl := p.effectivePlaylist()
	p.mu.Unlock()
	p.backend.SetPlaylist(pl)
}

// Playlist returns the playlist as set (without the fallback).
func (p *Player) Playlist() []Track {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Track(nil), p.playlist...)
}

// Play starts playback and remembers that it is wanted. An error means
// the change could not be saved: nothing changed, live or on disk.
func (p *Player) Play() error {
	return p.change(func(s *Settings) { s.Playing = true }, "play", p.backend.Play)
}

// Stop stops playback and remembers that silence is wanted. An error means
// the change could not be saved: nothing changed, live or on disk.
func (p *Player) Stop() error {
	return p.change(func(s *Settings) { s.Playing = false }, "stop", p.backend.Stop)
}

// Next skips to the next track.
func (p *Player) Next() {
	p.events.Add(Event{Kind: "admin", Message: "next track"})
	p.backend.Next()
}

// SetVolume sets and remembers the volume (clamped to 0..100). An error
// means the change could not be saved: nothing changed, live or on disk.
func (p *Player) SetVolume(v int) error {
	v = clampVolume(v)
	return p.change(func(s *Settings) { s.Volume = v }, "volume", func() { p.backend.SetVolume(v) })
}

// Settings returns the wanted settings.
func (p *Player) Settings() Settings {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.settings
}

// change applies an admin change: saved first, then made live, all under
// changeMu, so concurrent changes are saved and applied in one order and
// the last one acknowledged is both what plays and what a restart comes
// back to. If the save fails, nothing is made live and the error (wrapping
// its errno, e.g. ENOSPC) goes back to the caller, so what the client is
// told, what plays and what is saved stay the same. Only a real change is
// saved, so repeated API calls do not wear the flash; apply runs either
// way, as a play request also nudges a backend that stopped on its own.
func (p *Player) change(f func(*Settings), what string, apply func()) error {
	p.changeMu.Lock()
	defer p.changeMu.Unlock()
	p.mu.Lock()
	old := p.settings
	s := old
	p.mu.Unlock()
	f(&s)
	if s != old {
		if p.save != nil {
			if err := p.save(s); err != nil {
				p.log.Error("settings not saved; the change is refused", "change", what, "err", err)
				return fmt.Errorf("save %s: %w", what, err)
			}
		}
		p.mu.Lock()
		p.settings = s
		p.mu.Unlock()
		p.events.Add(Event{Kind: "admin", Message: what})
	}
	apply()
	return nil
}

// Status returns a snapshot for the API.
func (p *Player) Status() Status {
	bs := p.backend.Status()
	p.mu.Lock()
	s := p.settings
	n := len(p.playlist)
	onFallback := n == 0 || p.refusedAll
	p.mu.Unlock()
	st := Status{
		BackendStatus:  bs,
		Backend:        p.backend.Name(),
		Wanted:         StateStopped,
		Volume:         s.Volume,
		PlaylistLength: n,
		Fallback:       onFallback,
	}
	if s.Playing {
		st.Wanted = StatePlaying
	}
	st.Uptime = p.now().Sub(p.started)
	if p.watchdog != nil {
		st.Watchdog = p.watchdog.Status()
	}
	if ob, ok := p.backend.(interface{ Outputs() []OutputStatus }); ok {
		st.Outputs = ob.Outputs()
	}
	var degraded []string
	if p.degraded != nil {
		degraded = p.degraded()
	}
	st.Health = AssessHealth(st, p.AudioFlowing(), degraded, p.now())
	return st
}

// AudioFlowing reports whether audio is reaching the output now: the
// answer /healthz and the systemd watchdog rely on.
func (p *Player) AudioFlowing() bool {
	if p.watchdog != nil {
		return p.watchdog.Healthy()
	}
	return p.backend.Status().State == StatePlaying
}

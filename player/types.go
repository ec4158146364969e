package player

import (
	"context"
	"time"
)

// The PCM format every sink takes and the direct backend produces.
const (
	SampleRate    = 44100
	Channels      = 2
	BytesPerFrame = 4 // s16le stereo
)

// Track is one entry of the playlist.
type Track struct {
	ID   string `json:"id"`   // stable id (library id, or file name)
	Path string `json:"-"`    // absolute path of the MP3 to play
	Name string `json:"name"` // display name
}

// State is what a backend is doing right now.
type State string

const (
	StateStarting   State = "starting"
	StatePlaying    State = "playing"
	StateStopped    State = "stopped"
	StateRecovering State = "recovering"
	StateFailed     State = "failed" // the backend cannot play at all right now (see Fault)
)

// Skip records a track the backend refused to play and why.
type Skip struct {
	TrackID string    `json:"track_id"`
	Name    string    `json:"name"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// BackendStatus is a snapshot of a backend. Frames, LevelDBFS and LastAudio
// describe what actually reached the output and are the watchdog's signals.
type BackendStatus struct {
	State    State         `json:"state"`
	Track    *Track        `json:"track,omitempty"` // on air
	Index    int           `json:"index"`           // position of Track in the playlist, -1 if none
	Position time.Duration `json:"position_ns"`
	Duration time.Duration `json:"duration_ns"`
	// Frames counts PCM frames delivered to the output since the backend
	// started. It only grows; when it stops growing while playing, audio
	// is not flowing.
	Frames uint64 `json:"frames"`
	// LevelDBFS is the RMS level of the most recent ~100 ms sent to the
	// output, in dBFS (-120 for digital silence).
	LevelDBFS float64 `json:"level_dbfs"`
	// SourceSilent is true when the track itself is silent at this point,
	// so silence on the output is expected and not a fault.
	SourceSilent bool `json:"source_silent"`
	// LastAudio is when a non-silent block last reached the output.
	LastAudio time.Time `json:"last_audio"`
	// Fault is the current problem (e.g. the sound card is missing),
	// zero when healthy. Its JSON is the string "class: detail".
	Fault   Fault  `json:"fault,omitzero"`
	Skipped []Skip `json:"skipped,omitempty"`
	// PCMCache is what the direct backend's decoded-track cache is doing;
	// absent from the MPD backend and when the cache is off.
	PCMCache *PCMCacheStatus `json:"pcm_cache,omitempty"`
}

// Rung is one step of the watchdog's recovery ladder, lowest first.
type Rung int

const (
	RungReplay         Rung = iota + 1 // resume / replay
	RungClearError                     // clear the backend's error and replay
	RungReconnect                      // drop and rebuild the connection to the backend
	RungRestartBackend                 // restart the MPD process or the sink process
	RungExit                           // exit non-zero so systemd restarts mohd
	RungReboot                         // reboot the box (opt-in, rate-limited)
)

func (r Rung) String() string {
	switch r {
	case RungReplay:
		return "replay"
	case RungClearError:
		return "clear-error"
	case RungReconnect:
		return "reconnect"
	case RungRestartBackend:
		return "restart-backend"
	case RungExit:
		return "exit"
	case RungReboot:
		return "reboot"
	}
	return "none"
}

// Backend plays a playlist in a loop. All methods except Run are safe to
// call from any goroutine and must not block on the audio path.
type Backend interface {
	// Name is "direct" or "mpd".
	Name() string
	// Run plays until ctx is done. It returns nil on cancellation; an
	// error only when the backend cannot run at all.
	Run(ctx context.Context) error
	// SetPlaylist replaces the playlist. The track on air keeps playing to
	// its end without a gap unless it was removed.
	SetPlaylist(tracks []Track)
	Play()
	Stop()
	Next()
	// SetVolume sets the volume, 0..100, without clicks.
	SetVolume(v int)
	Status() BackendStatus
	// Recover performs one rung of the recovery ladder the backend knows
	// how to perform (replay, clear error, reconnect, restart backend).
	Recover(ctx context.Context, rung Rung) error
}

// Sink takes s16le stereo 44.1 kHz PCM. Write blocks so that audio is
// consumed in real time, like a sound card.
type Sink interface {
	Write(p []byte) (int, error)
	Close() error
}

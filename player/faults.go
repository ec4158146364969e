package player

// This file is the fault vocabulary: every kind of trouble a backend or
// the watchdog can name, as a type the watchdog switches on, and the first
// rung of the recovery ladder that can help with each. A fault travels as
// a Fault value; only its wire form (the status document, events,
// /metrics) is text.

import "strings"

// FaultClass names a kind of trouble. The classes are a public contract:
// they are the "fault" of events and of the watchdog's status, and the
// labels of moh_watchdog_faults_total.
type FaultClass string

// The classes the watchdog detects itself, from what it sees of the output.
const (
	FaultNotPlaying FaultClass = "not-playing" // playback wanted, backend not playing
	FaultStalled    FaultClass = "stalled"     // frames stopped advancing
	FaultSilent     FaultClass = "silent"      // output silent while the source is not
)

// The classes backends report in BackendStatus.Fault.
const (
	// FaultBackend is a backend's fault that names no class of its own.
	FaultBackend FaultClass = "backend-fault"
	// FaultNoTrack: the backend has nothing it can play — every track of
	// its playlist was refused, or the playlist is empty. The Player
	// answers it with the built-in track.
	FaultNoTrack FaultClass = "no-track"
	// FaultSinkFailed: the line output cannot be opened or written (a
	// missing sound card, a dead aplay, MPD unable to open its output).
	FaultSinkFailed FaultClass = "sink-failed"

	FaultMPDError        FaultClass = "mpd-error"        // MPD reports an error in its status
	FaultMPDDisconnected FaultClass = "mpd-disconnected" // the connection to MPD is gone
	FaultMPDExited       FaultClass = "mpd-exited"       // the MPD mohd owns is not running
	FaultMPDTimeout      FaultClass = "mpd-timeout"      // MPD did not answer a command in time
	// Another client (or MPD itself) changed what mohd owns.
	FaultMPDStopped FaultClass = "mpd-stopped" // stopped while playback is wanted
	FaultMPDPaused  FaultClass = "mpd-paused"  // paused while playback is wanted
	FaultMPDVolume  FaultClass = "mpd-volume"  // volume other than mohd set
	FaultMPDOutput  FaultClass = "mpd-output"  // an output mohd needs is disabled or moved away
	FaultMPDOptions FaultClass = "mpd-options" // repeat, single, random, consume or crossfade changed
	FaultMPDQueue   FaultClass = "mpd-queue"   // the queue changed
)

// faultLadder is every class with the lowest rung that can help with it,
// in the order monitoring lists them. A class missing here starts at
// RungReplay.
var faultLadder = []struct {
	class FaultClass
	first Rung
}{
	{FaultNotPlaying, RungReplay},
	{FaultStalled, RungReplay},
	{FaultSilent, RungReplay},
	{FaultBackend, RungReplay},
	{FaultNoTrack, RungReplay},
	// A new process opens the output afresh (for MPD: a new MPD opens its
	// outputs at once); the ladder's backoff paces the retries.
	{FaultSinkFailed, RungRestartBackend},
	{FaultMPDError, RungClearError},
	{FaultMPDDisconnected, RungReconnect},
	{FaultMPDExited, RungRestartBackend},
	// A hung MPD is killed by the call that timed out; only a restart
	// brings it back.
	{FaultMPDTimeout, RungRestartBackend},
	// The replay rung reasserts all of MPD's player state.
	{FaultMPDStopped, RungReplay},
	{FaultMPDPaused, RungReplay},
	{FaultMPDVolume, RungReplay},
	{FaultMPDOutput, RungReplay},
	{FaultMPDOptions, RungReplay},
	{FaultMPDQueue, RungReplay},
}

// FirstRung is the lowest rung of the ladder that can help with c.
func (c FaultClass) FirstRung() Rung {
	for _, f := range faultLadder {
		if f.class == c {
			return f.first
		}
	}
	return RungReplay
}

// FaultClasses lists every fault class the watchdog or a backend can
// report, so monitoring can show each one's counter at 0 from the start:
// an alert on increase() then fires on the very first fault.
var FaultClasses = func() []FaultClass {
	out := make([]FaultClass, len(faultLadder))
	for i, f := range faultLadder {
		out[i] = f.class
	}
	return out
}()

// Rungs lists the recovery ladder, lowest first.
var Rungs = []Rung{RungReplay, RungClearError, RungReconnect, RungRestartBackend, RungExit, RungReboot}

// Fault is a problem a backend reports: its class, which picks the
// recovery, and a detail for people.
type Fault struct {
	Class  FaultClass
	Detail string
}

// IsZero reports the absence of a fault (and lets `omitzero` leave it out
// of JSON).
func (f Fault) IsZero() bool { return f == Fault{} }

// String is the fault's wire form, "class: detail".
func (f Fault) String() string {
	switch {
	case f.Detail == "":
		return string(f.Class)
	case f.Class == "":
		return f.Detail
	}
	return string(f.Class) + ": " + f.Detail
}

// MarshalText writes the wire form, so a Fault is a JSON string.
func (f Fault) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads the wire form (see ParseFault).
func (f *Fault) UnmarshalText(b []byte) error {
	*f = ParseFault(string(b))
	return nil
}

// ParseFault reads the wire form String writes, for a status document
// received from a box: the class is what precedes the first ": ". It is
// a decoder, not a classifier: text without a class stays its own class.
func ParseFault(s string) Fault {
	class, detail, _ := strings.Cut(s, ": ")
	return Fault{Class: FaultClass(class), Detail: detail}
}

package player

import "context"

// WatchdogStatus is the watchdog's part of Status.
type WatchdogStatus struct {
	Recoveries uint64 `json:"recoveries"`
	LastFault  *Event `json:"last_fault,omitempty"`
}

// Watchdog supervises a backend. (Being built: see the MPD/watchdog issue.)
type Watchdog struct{}

// Run supervises until ctx is done.
func (w *Watchdog) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Status returns counters for the API.
func (w *Watchdog) Status() WatchdogStatus { return WatchdogStatus{} }

// Healthy reports whether audio is flowing.
func (w *Watchdog) Healthy() bool { return false }

package check

import (
	"github.com/mohproject/moh/internal/status"
)

// FromStatus is the Input a box's status document gives: the same facts
// its /metrics exports (internal/metrics builds both from the player),
// so a check from the document judges as `mohd check` on the box would.
func FromStatus(d status.Doc) Input {
	in := Input{
		From: "the status document",
		Health: Health{
			State:  string(d.Health.State),
			Reason: d.Health.Reason,
			Silent: d.Health.Silent,
		},
	}
	if dk := d.Disk; dk != nil {
		// A box that cannot read its free space sends a disk with no
		// size and the reason (uploads.Library.Disk), where /metrics
		// says moh_disk_error 1.
		if dk.TotalBytes == 0 && dk.Message != "" {
			in.DiskError = true
		} else {
			in.Disk = &Disk{Free: float64(dk.FreeBytes), Total: float64(dk.TotalBytes)}
		}
	}
	w := d.Watchdog
	if lf := w.LastFault; lf != nil && !lf.Time.IsZero() {
		in.LastFault, in.LastFaultClass = lf.Time, string(lf.Fault)
	}
	for _, n := range w.RecoveriesByRung {
		in.Recoveries += float64(n)
	}
	for _, n := range w.FaultsByClass {
		in.Faults += float64(n)
	}
	level, uptime, volume := d.LevelDBFS, d.Uptime.Seconds(), float64(d.Volume)
	in.Level, in.Uptime, in.Volume = &level, &uptime, &volume
	return in
}

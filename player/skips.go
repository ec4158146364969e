package player

import (
	"log/slog"
	"sync"
	"time"
)

// maxSkipped is how many refused tracks a backend reports.
const maxSkipped = 20

// skipLog is the tracks a backend refused lately and why, one entry per
// track, the latest last. It logs at WARN only when a track fails for a
// new reason, so a bad file in a loop does not write to the journal (on
// flash) every lap.
type skipLog struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	list []Skip
}

func newSkipLog(log *slog.Logger, now func() time.Time) *skipLog {
	return &skipLog{log: log, now: now}
}

// add records that t was refused for reason.
func (l *skipLog) add(t Track, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sk := Skip{TrackID: t.ID, Name: t.Name, Reason: reason, At: l.now()}
	for i, s := range l.list {
		if s.TrackID == t.ID {
			l.list = append(l.list[:i], l.list[i+1:]...)
			if s.Reason == reason {
				l.list = append(l.list, sk)
				l.log.Debug("skipping track again", "track", t.ID, "reason", reason)
				return
			}
			break
		}
	}
	l.list = append(l.list, sk)
	if len(l.list) > maxSkipped {
		l.list = l.list[len(l.list)-maxSkipped:]
	}
	l.log.Warn("skipping track", "track", t.ID, "name", t.Name, "path", t.Path, "reason", reason)
}

// snapshot returns a copy for a status.
func (l *skipLog) snapshot() []Skip {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Skip(nil), l.list...)
}

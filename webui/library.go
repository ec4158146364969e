package webui

import (
	"context"
	"io"
	"time"

	"github.com/mohproject/moh/uploads"
)

// Library is what the web surface needs of the track library.
type Library interface {
	Tracks() []uploads.Track
	Get(id string) (uploads.Track, bool)
	// Ingest reads one upload, refusing bad input with an
	// *uploads.Refusal; existed is true when the same audio was already
	// in the library.
	Ingest(ctx context.Context, name string, r io.Reader, progress func(uploads.Progress)) (t uploads.Track, existed bool, err error)
	Delete(id string) error
	Reorder(ids []string) error
	// Preview returns the path of the phone-band WAV of a track.
	Preview(ctx context.Context, id string) (string, error)
	Disk() uploads.DiskStatus
}

type diskStatus = uploads.DiskStatus

// diskSnapshot is the library's disk state at one moment.
type diskSnapshot struct {
	at time.Time
	d  diskStatus
}

// diskStatus is the library's disk state, cached for two seconds: status
// is polled several times a second by every open page and must stay cheap
// under load. One request refreshes it while the others use the previous
// value instead of waiting.
func (s *Server) diskStatus() *diskStatus {
	if s.opt.Library == nil {
		return nil
	}
	now := s.now()
	snap := s.diskCache.Load()
	if snap == nil || now.Sub(snap.at) > 2*time.Second || now.Before(snap.at) {
		if s.diskMu.TryLock() {
			snap = &diskSnapshot{at: now, d: s.opt.Library.Disk()}
			s.diskCache.Store(snap)
			s.diskMu.Unlock()
		} else if snap == nil {
			s.diskMu.Lock() // the very first one: wait for it
			snap = s.diskCache.Load()
			s.diskMu.Unlock()
		}
	}
	d := snap.d
	return &d
}

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

// diskStatus is the library's disk state, cached for a second or two:
// status is polled several times a second by every open page and must stay
// cheap under load.
func (s *Server) diskStatus() *diskStatus {
	if s.opt.Library == nil {
		return nil
	}
	s.diskMu.Lock()
	defer s.diskMu.Unlock()
	now := s.now()
	if s.diskCache == nil || now.Sub(s.diskAt) > 2*time.Second || now.Before(s.diskAt) {
		d := s.opt.Library.Disk()
		s.diskCache, s.diskAt = &d, now
	}
	d := *s.diskCache
	return &d
}

func diskWarning(d *diskStatus) string {
	if d == nil || !d.Warning {
		return ""
	}
	if d.Message == "" {
		return "disk space is low"
	}
	return d.Message
}

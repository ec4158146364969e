package webui

import (
	"context"
	"io"

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

// diskStatus is the library's disk state (uploads.Library caches one
// reading for everyone who asks: status is polled several times a second
// by every open page).
func (s *Server) diskStatus() *diskStatus {
	if s.opt.Library == nil {
		return nil
	}
	d := s.opt.Library.Disk()
	return &d
}

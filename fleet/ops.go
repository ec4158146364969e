package fleet

import (
	"context"
	"io"

	"github.com/mohproject/moh/internal/status"
)

// Ops is what the agent may do to the box: the same operations as the
// HTTP API. mohd adapts its player and library to it, so fleet needs
// neither webui nor the concrete types.
type Ops interface {
	// Status is the box's status document, the same one GET
	// /api/v1/status serves (status.Build).
	Status() status.Doc
	// Tracks is the playlist in order, as the API shows it.
	Tracks() any
	// Play, Stop and SetVolume save the change before it goes live; an
	// error means it was refused and nothing changed.
	Play() error
	Stop() error
	Next()
	SetVolume(v int) error
	// AddTrack ingests a verified track into the library and returns
	// its id.
	AddTrack(ctx context.Context, name string, r io.Reader) (string, error)
	RemoveTrack(id string) error
	Reorder(order []string) error
}

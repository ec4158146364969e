package webui

import (
	"context"
	"testing"

	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// realPlayer is a Player over the direct backend playing into a paced null
// sink, fed from lib the way mohd wires it: every library change becomes
// the player's playlist.
func realPlayer(t testing.TB, lib *uploads.Library) (*player.Player, *player.Direct) {
	t.Helper()
	p, d := directPlayer(t, player.DirectOptions{OpenSink: openNullSink})
	p.SetPlaylist(libraryTracks(lib))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-lib.Changes():
				p.SetPlaylist(libraryTracks(lib))
			}
		}
	}()
	runPlayer(t, p)
	t.Cleanup(func() { cancel(); <-done })
	return p, d
}

// The daemon hands webui the real player and library.
var (
	_ Player  = (*player.Player)(nil)
	_ Library = (*uploads.Library)(nil)
)

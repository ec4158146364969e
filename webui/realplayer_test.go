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
	fb, err := player.EnsureFallback(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := player.NewDirect(player.DirectOptions{
		Logger:   testLogger(t),
		OpenSink: func(context.Context) (player.Sink, error) { return player.NewNullSink(nil), nil },
	})
	p := player.New(player.Options{Backend: d, Logger: testLogger(t), Fallback: fb, Settings: player.DefaultSettings})
	toPlayer := func() []player.Track {
		var out []player.Track
		for _, tr := range lib.Tracks() {
			out = append(out, player.Track{ID: tr.ID, Name: tr.Name, Path: tr.Path})
		}
		return out
	}
	p.SetPlaylist(toPlayer())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-lib.Changes():
				p.SetPlaylist(toPlayer())
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

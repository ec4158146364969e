package webui

import (
	"context"
	"sync"
	"testing"

	"github.com/mohproject/moh/player"
)

// stubBackend stands in for a backend in the auth and routing tests, which
// only need a Player to answer; the browser test and the bench play real
// audio through the direct backend.
type stubBackend struct {
	mu    sync.Mutex
	state player.State
	vol   int
	pl    []player.Track
	fault string // reported as the backend's fault, with state failed
}

func (b *stubBackend) setFault(f string) { b.mu.Lock(); b.fault = f; b.mu.Unlock() }

func (b *stubBackend) Name() string { return "stub" }
func (b *stubBackend) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
func (b *stubBackend) SetPlaylist(t []player.Track) { b.mu.Lock(); b.pl = t; b.mu.Unlock() }
func (b *stubBackend) Play()                        { b.mu.Lock(); b.state = player.StatePlaying; b.mu.Unlock() }
func (b *stubBackend) Stop()                        { b.mu.Lock(); b.state = player.StateStopped; b.mu.Unlock() }
func (b *stubBackend) Next()                        {}
func (b *stubBackend) SetVolume(v int)              { b.mu.Lock(); b.vol = v; b.mu.Unlock() }
func (b *stubBackend) Status() player.BackendStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fault != "" {
		return player.BackendStatus{State: player.StateFailed, Fault: player.ParseFault(b.fault), Index: -1, LevelDBFS: -120}
	}
	return player.BackendStatus{State: b.state, Index: -1, LevelDBFS: -120}
}
func (b *stubBackend) Recover(context.Context, player.Rung) error { return nil }

func (eo envOpts) testPlayer(t testing.TB) *player.Player {
	p := player.New(player.Options{Backend: &stubBackend{state: player.StateStopped}, Logger: testLogger(t), Settings: player.DefaultSettings})
	runPlayer(t, p)
	return p
}

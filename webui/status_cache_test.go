package webui

import (
	"sync"
	"testing"
)

// Changes answered at once each refresh the cached status; whatever order
// those refreshes finish in, the cache must end on the last change, so a
// status read right after the last answer shows it (the API's signals
// never lag what was acknowledged).
func TestStatusCacheEndsOnTheLastChange(t *testing.T) {
	e := newEnv(t, envOpts{})
	for round := range 200 {
		var wg sync.WaitGroup
		for w := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.player.SetVolume((round*24 + w) % 101); err != nil {
					t.Error(err)
				}
				e.srv.refreshStatus()
			}()
		}
		wg.Wait()
		if got, want := e.srv.cachedStatus().doc.Volume, e.player.Settings().Volume; got != want {
			t.Fatalf("round %d: cached status says volume %d, the player %d", round, got, want)
		}
	}
}

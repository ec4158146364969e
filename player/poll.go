package player

import (
	"context"
	"time"
)

// every runs f once per interval until ctx is done (then it returns nil)
// or f fails (then it returns f's error): the loop of the watchdog and of
// the Player's fallback guard.
func every(ctx context.Context, interval time.Duration, f func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := f(); err != nil {
				return err
			}
		}
	}
}

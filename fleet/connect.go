package fleet

import (
	"context"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ConnectFirst makes the first broker connection, retrying with doubling
// backoff from first up to max until it succeeds (the client) or ctx ends
// (nil). paho's own first-connection retries are silent; here every
// failed attempt is logged, so a wrong certificate or a broker that is
// down shows in the log. newClient is called for each attempt, so a caller
// may give each one a fresh will. Later reconnections are paho's.
func ConnectFirst(ctx context.Context, newClient func() mqtt.Client, first, max time.Duration, log *slog.Logger) mqtt.Client {
	wait := min(first, max)
	for attempt := 1; ; attempt++ {
		c := newClient()
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			c.Disconnect(0)
			return nil
		}
		if tok.Error() == nil {
			return c
		}
		log.Warn("cannot reach the broker; retrying", "attempt", attempt, "err", tok.Error(), "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		wait = min(2*wait, max)
	}
}

package main

import "github.com/mohproject/moh/internal/phone"

// streamHub is the telephone signal the HTTP streams serve: the direct
// backend's hub, which runs whatever --output lists (its converter sleeps
// after 10 s without a receiver and replays its last 1.2 s of line PCM at
// the next one, so a stream starts on music). The MPD backend makes no
// telephone signal, so it serves no streams (503).
func (lo *lineOutputs) streamHub(c *config) *phone.Hub {
	if c.Backend == "mpd" {
		return nil
	}
	return lo.Hub
}

package main

import "github.com/mohproject/moh/internal/phone"

// streamHub is the telephone signal the HTTP streams serve: the direct
// backend's hub, which runs whatever --output lists (its converter costs
// about 41 µs per 20 ms frame, 0.2 % of one core, BenchmarkConverterFrame:
// not worth starting and stopping with the listeners). The MPD backend makes
// no telephone signal, so it serves no streams (503).
func (lo *lineOutputs) streamHub(c *config) *phone.Hub {
	if c.Backend == "mpd" {
		return nil
	}
	return lo.Hub
}

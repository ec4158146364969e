package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is mohd's GOGC when the environment sets none. Go's default
// (100) lets the heap grow to twice what is live, and to 4 MB at least.
// mohd keeps about 1 MB live and, in steady playback, allocates almost
// nothing (the PCM cache streams through reused buffers), so that second
// half of the heap only costs RAM on a box that has little: at 50 a
// playing mohd's peak RSS is about 2 MB lower (make bench) for more GC
// cycles where mohd does allocate, in the first pass of a new track and
// under API load.
const gcPercent = 50

// tuneGC sets gcPercent unless GOGC says otherwise (an operator's
// Environment=GOGC= in the unit wins).
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

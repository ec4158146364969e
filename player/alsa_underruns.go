package player

import (
	"bytes"
	"sync/atomic"
)

// alsaUnderruns counts the underruns every aplay of this process
// reported. It lives beyond one sink, since the direct backend opens a
// new aplay after each fault, and the count is the box's, for its status
// and /metrics.
var alsaUnderruns atomic.Uint64

// ALSAUnderruns is how many underruns aplay reported since mohd started:
// the sound card ran dry because audio came too late (an overloaded box,
// a stalled disk), which callers hear as a click or a gap.
func ALSAUnderruns() uint64 { return alsaUnderruns.Load() }

// underrunMark is what aplay prints on stderr for each underrun,
// "underrun!!! (at least 12.345 ms long)" (an overrun, on capture, would
// say "overrun!!!").
var underrunMark = []byte("underrun!!!")

// underrunCounter is a writer on aplay's stderr that counts underrunMark,
// also when a write splits it.
type underrunCounter struct {
	carry []byte // the tail of the previous write that may start a mark
}

func (u *underrunCounter) Write(p []byte) (int, error) {
	buf := append(u.carry, p...)
	if n := bytes.Count(buf, underrunMark); n > 0 {
		alsaUnderruns.Add(uint64(n))
		buf = buf[bytes.LastIndex(buf, underrunMark)+len(underrunMark):]
	}
	keep := min(len(buf), len(underrunMark)-1)
	u.carry = append(u.carry[:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

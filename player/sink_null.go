package player

import (
	"context"
	"errors"
	"sync"
)

// ErrSinkClosed is returned by Write on a sink that was closed.
var ErrSinkClosed = errors.New("sink closed")

// pacedChunk is the most a paced sink hands on in one step; it is kept
// well under the pacer's lead so the first write does not idle.
func pacedChunk(p *Pacer) int {
	n := int(int64(p.Ahead()/2) * pcmByteRate / 1e9)
	n -= n % BytesPerFrame
	return max(n, BytesPerFrame)
}

// pacedWriter feeds a paced sink chunk by chunk. Close from another
// goroutine wakes a Write sleeping in the pacer.
type pacedWriter struct {
	pacer  *Pacer
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // one Write at a time: the pacer has one timeline
}

func newPacedWriter(clock Clock) *pacedWriter {
	ctx, cancel := context.WithCancel(context.Background())
	return &pacedWriter{pacer: NewPacer(clock, 0, 0), ctx: ctx, cancel: cancel}
}

// write paces p and passes it on to out in chunks.
func (w *pacedWriter) write(p []byte, out func([]byte) (int, error)) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chunk := pacedChunk(w.pacer)
	done := 0
	for done < len(p) {
		if w.ctx.Err() != nil {
			return done, ErrSinkClosed
		}
		n := min(chunk, len(p)-done)
		if err := w.pacer.Wait(w.ctx, n); err != nil {
			return done, ErrSinkClosed
		}
		m, err := out(p[done : done+n])
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// NullSink discards PCM at the speed a sound card would play it, so a box
// without an audio output still behaves (and is watched) like one with.
type NullSink struct {
	w *pacedWriter
}

// NewNullSink returns a NullSink paced by clock (nil: RealClock).
func NewNullSink(clock Clock) *NullSink {
	return &NullSink{w: newPacedWriter(clock)}
}

// Write discards p after the time it takes to play it.
func (s *NullSink) Write(p []byte) (int, error) {
	return s.w.write(p, func(b []byte) (int, error) { return len(b), nil })
}

// Close ends the sink; a Write in progress returns ErrSinkClosed.
func (s *NullSink) Close() error {
	s.w.cancel()
	return nil
}

// Package phone carries moh's telephone signal: the player's music as
// 8 kHz mono G.711 in 20 ms frames, made once and handed to every network
// output (RTP multicast, SIP calls, HTTP streams), so every caller on every
// phone system hears the same live position and the per-caller cost is a
// packet, not a decode.
package phone

import (
	"sync"
	"sync/atomic"
	"time"
)

// Telephone framing: 8000 samples/s, 20 ms per frame.
const (
	SampleRate    = 8000
	FrameSamples  = 160 // 20 ms at 8 kHz
	FrameDuration = 20 * time.Millisecond
)

// Frame is 20 ms of the telephone signal, encoded once for all outputs.
// Subscribers share the pointer and must not modify it.
type Frame struct {
	// Seq counts frames since the hub started; it never skips and never
	// resets, so RTP sequence numbers and timestamps derived from it stay
	// continuous across tracks and loop points.
	Seq  uint64
	PCM  [FrameSamples]int16 // linear, levelled and band-limited
	ULaw [FrameSamples]byte  // G.711 µ-law (RTP payload type 0)
	ALaw [FrameSamples]byte  // G.711 A-law (RTP payload type 8)
	// Silent is set for frames made while no music reached the hub (player
	// stopped, starting): outputs keep their streams alive with them.
	Silent bool
}

// Hub fans frames out to subscribers. Publish never blocks: a subscriber
// whose queue is full loses that frame (and the count says so), so one
// stalled reader never slows the others or the line-out.
type Hub struct {
	mu   sync.Mutex
	subs map[*Sub]struct{}
	taps map[*tap]struct{}
	seq  uint64
	// receivers counts subs and taps, read without the lock by the
	// converter's pacer; wake is signalled when the first one arrives.
	receivers atomic.Int32
	wake      chan struct{}
}

// tap is a receiver Publish calls in its own goroutine (Attach).
type tap struct{ fn func(*Frame) }

// NewHub returns a hub with no subscribers.
func NewHub() *Hub {
	return &Hub{subs: make(map[*Sub]struct{}), taps: make(map[*tap]struct{}), wake: make(chan struct{}, 1)}
}

// Idle reports whether nobody receives frames (no subscription, no
// attached receiver). The converter goes idle after a while of it.
func (h *Hub) Idle() bool { return h.receivers.Load() == 0 }

// Wake is signalled when a receiver arrives at a hub that had none. A
// signal may be stale (the receiver left again): check Idle after it.
func (h *Hub) Wake() <-chan struct{} { return h.wake }

// recount updates receivers; the caller holds mu.
func (h *Hub) recount() {
	n := int32(len(h.subs) + len(h.taps))
	if was := h.receivers.Swap(n); was == 0 && n > 0 {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// Attach calls fn with every frame published from now on, in the
// publisher's goroutine, before Publish returns; detach stops it (after
// detach returns, fn is not called again). It is for outputs that must
// send the moment a frame is due, on the pacer's clock (the RTP
// multicast stream): fn must be quick and never block, or it delays
// every frame.
func (h *Hub) Attach(fn func(*Frame)) (detach func()) {
	t := &tap{fn: fn}
	h.mu.Lock()
	h.taps[t] = struct{}{}
	h.recount()
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.taps, t)
		h.recount()
		h.mu.Unlock()
	}
}

// Publish stamps f with the next sequence number and offers it to every
// subscriber.
func (h *Hub) Publish(f *Frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.Seq = h.seq
	h.seq++
	for t := range h.taps {
		t.fn(f)
	}
	for s := range h.subs {
		select {
		case s.c <- f:
		default:
			s.dropped.Add(1)
		}
	}
}

// Subscribe returns a subscription that receives every frame published
// from now on, queueing up to depth frames (at least 1).
func (h *Hub) Subscribe(name string, depth int) *Sub {
	if depth < 1 {
		depth = 1
	}
	s := &Sub{Name: name, c: make(chan *Frame, depth), hub: h}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.recount()
	h.mu.Unlock()
	return s
}

// Subscribers returns how many subscriptions are open.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Attached returns how many Attach receivers are attached.
func (h *Hub) Attached() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.taps)
}

// Sub is one output's view of the hub.
type Sub struct {
	Name    string
	c       chan *Frame
	hub     *Hub
	dropped atomic.Uint64
	once    sync.Once
}

// C delivers frames in order. It is closed by Close.
func (s *Sub) C() <-chan *Frame { return s.c }

// Dropped counts frames this subscriber missed because its queue was full.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. It is safe to call more than once.
func (s *Sub) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		s.hub.recount()
		close(s.c)
		s.hub.mu.Unlock()
	})
}

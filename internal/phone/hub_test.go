package phone

import (
	"sync"
	"testing"
)

func TestHubStampsSequenceAndFansOut(t *testing.T) {
	h := NewHub()
	a := h.Subscribe("a", 4)
	b := h.Subscribe("b", 4)
	if h.Subscribers() != 2 {
		t.Fatalf("subscribers = %d", h.Subscribers())
	}
	for range 3 {
		h.Publish(new(Frame))
	}
	for _, s := range []*Sub{a, b} {
		for want := uint64(0); want < 3; want++ {
			if f := <-s.C(); f.Seq != want {
				t.Fatalf("%s: seq %d, want %d", s.Name, f.Seq, want)
			}
		}
	}
}

// A stalled subscriber loses frames (and counts them); the others and the
// publisher never wait for it.
func TestHubSlowSubscriberDropsNotBlocks(t *testing.T) {
	h := NewHub()
	slow := h.Subscribe("slow", 2)
	fast := h.Subscribe("fast", 100)
	for range 10 {
		h.Publish(new(Frame))
	}
	if slow.Dropped() != 8 || fast.Dropped() != 0 {
		t.Fatalf("dropped slow=%d fast=%d, want 8 and 0", slow.Dropped(), fast.Dropped())
	}
	if len(fast.C()) != 10 {
		t.Fatalf("fast got %d frames", len(fast.C()))
	}
}

func TestHubCloseWhilePublishing(t *testing.T) {
	h := NewHub()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			h.Publish(new(Frame))
		}
	}()
	for range 100 {
		s := h.Subscribe("x", 1)
		s.Close()
		s.Close() // twice is fine
		if _, ok := <-s.C(); ok {
			// A frame may sit in the buffer; after it the channel is closed.
			if _, ok := <-s.C(); ok {
				t.Fatal("C still open after Close")
			}
		}
	}
	wg.Wait()
	if h.Subscribers() != 0 {
		t.Fatalf("subscribers = %d after closing all", h.Subscribers())
	}
	if d := (&Sub{}).Dropped(); d != 0 {
		t.Fatal("zero Sub counts drops")
	}
}

// Idle and Wake are what the converter sleeps and wakes on: idle with no
// receiver of either kind, one wake signal per arrival at an idle hub
// (never blocking the arriving receiver), none while receivers stay.
func TestHubIdleAndWake(t *testing.T) {
	h := NewHub()
	woken := func() bool {
		select {
		case <-h.Wake():
			return true
		default:
			return false
		}
	}
	if !h.Idle() || woken() {
		t.Fatal("a new hub: want idle, no wake signal")
	}
	s := h.Subscribe("a", 1)
	if h.Idle() || !woken() {
		t.Fatal("after the first subscription: want busy and a wake signal")
	}
	detach := h.Attach(func(*Frame) {})
	if woken() {
		t.Fatal("a second receiver signalled a wake")
	}
	s.Close()
	if h.Idle() {
		t.Fatal("idle with a receiver attached")
	}
	detach()
	if !h.Idle() {
		t.Fatal("not idle after the last receiver left")
	}
	for range 3 { // arrivals nobody waits for: one pending signal, no block
		h.Attach(func(*Frame) {})()
	}
	if !woken() || woken() {
		t.Fatal("want exactly one pending wake signal after arrivals at an idle hub")
	}
}

package player

import (
	"context"
	"sync"
	"testing"
	"time"
)

// pacerTestClock is a fake Clock: Sleep advances time by exactly d plus
// an optional oversleep, as a loaded scheduler would.
type pacerTestClock struct {
	mu        sync.Mutex
	now       time.Time
	oversleep time.Duration
	sleeps    int
}

func newPacerTestClock() *pacerTestClock {
	return &pacerTestClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *pacerTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *pacerTestClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d + c.oversleep)
	c.sleeps++
	return ctx.Err()
}

func (c *pacerTestClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// bytesFor is the PCM byte count of d; tests use multiples of 10 ms, which
// are whole frames.
func bytesFor(d time.Duration) int {
	return int(d * SampleRate / time.Second * BytesPerFrame)
}

func TestPacerFirstChunksRunAheadThenRealTime(t *testing.T) {
	clk := newPacerTestClock()
	start := clk.Now()
	p := NewPacer(clk, 100*time.Millisecond, 250*time.Millisecond)
	chunk := bytesFor(20 * time.Millisecond)
	ctx := context.Background()
	for i := 1; i <= 8; i++ {
		if err := p.Wait(ctx, chunk); err != nil {
			t.Fatal(err)
		}
		// After i chunks the writer may be at most 100 ms ahead of the
		// audio's end: now == max(0, i*20ms - 100ms).
		want := max(time.Duration(i)*20*time.Millisecond-100*time.Millisecond, 0)
		if got := clk.Now().Sub(start); got != want {
			t.Fatalf("after chunk %d: elapsed %v, want %v", i, got, want)
		}
	}
	if clk.sleeps != 3 {
		t.Errorf("sleeps = %d, want 3 (the first 5 chunks fill the 100 ms lead)", clk.sleeps)
	}
}

func TestPacerNoDriftOverHours(t *testing.T) {
	for _, tc := range []struct {
		name      string
		oversleep time.Duration
		chunk     int
	}{
		{"exact sleeps", 0, 4096},
		{"3ms oversleep each call", 3 * time.Millisecond, 4096},
		{"odd chunk sizes", time.Millisecond, 4093},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newPacerTestClock()
			clk.oversleep = tc.oversleep
			start := clk.Now()
			p := NewPacer(clk, 100*time.Millisecond, 250*time.Millisecond)
			total := bytesFor(time.Hour)
			for done := 0; done < total; {
				n := min(tc.chunk, total-done)
				if err := p.Wait(context.Background(), n); err != nil {
					t.Fatal(err)
				}
				done += n
			}
			// The writer ends 100 ms ahead of the audio's end; an
			// oversleep on one call is repaid on the next, so the error
			// stays within one oversleep however long it runs.
			want := time.Hour - 100*time.Millisecond
			got := clk.Now().Sub(start)
			if d := got - want; d < 0 || d > tc.oversleep+time.Microsecond {
				t.Fatalf("1 h of audio took %v, want %v (+ at most %v)", got, want, tc.oversleep)
			}
			if p.Resyncs() != 0 {
				t.Errorf("resyncs = %d, want 0", p.Resyncs())
			}
		})
	}
}

func TestPacerReanchorsAfterStallInsteadOfBursting(t *testing.T) {
	clk := newPacerTestClock()
	p := NewPacer(clk, 100*time.Millisecond, 250*time.Millisecond)
	chunk := bytesFor(20 * time.Millisecond)
	ctx := context.Background()
	for range 50 { // 1 s
		_ = p.Wait(ctx, chunk)
	}
	clk.advance(10 * time.Second) // stopped, suspended, or the decoder hung
	resumed := clk.Now()
	for range 50 {
		_ = p.Wait(ctx, chunk)
	}
	// Bursting would let the next 10 s through with no sleep at all;
	// re-anchoring plays the second after the stall in real time.
	if got, want := clk.Now().Sub(resumed), 900*time.Millisecond; got != want {
		t.Fatalf("1 s of audio after a stall took %v, want %v", got, want)
	}
	if p.Resyncs() != 1 {
		t.Errorf("resyncs = %d, want 1", p.Resyncs())
	}
}

func TestPacerCatchesUpSmallLateness(t *testing.T) {
	clk := newPacerTestClock()
	start := clk.Now()
	p := NewPacer(clk, 100*time.Millisecond, 250*time.Millisecond)
	chunk := bytesFor(20 * time.Millisecond)
	ctx := context.Background()
	for i := range 100 { // 2 s
		if i == 50 {
			clk.advance(150 * time.Millisecond) // a hiccup shorter than resync
		}
		_ = p.Wait(ctx, chunk)
	}
	// The timeline is kept: the hiccup is absorbed, not added.
	if got, want := clk.Now().Sub(start), 1900*time.Millisecond; got != want {
		t.Fatalf("2 s of audio with a 150 ms hiccup took %v, want %v", got, want)
	}
	if p.Resyncs() != 0 {
		t.Errorf("resyncs = %d, want 0", p.Resyncs())
	}
}

func TestPacerResetStartsNewTimeline(t *testing.T) {
	clk := newPacerTestClock()
	p := NewPacer(clk, 100*time.Millisecond, time.Hour)
	ctx := context.Background()
	_ = p.Wait(ctx, bytesFor(time.Second))
	clk.advance(5 * time.Second)
	p.Reset()
	before := clk.Now()
	_ = p.Wait(ctx, bytesFor(time.Second))
	if got, want := clk.Now().Sub(before), 900*time.Millisecond; got != want {
		t.Fatalf("after Reset, 1 s took %v, want %v", got, want)
	}
}

func TestPacerWaitHonoursContext(t *testing.T) {
	p := NewPacer(nil, 10*time.Millisecond, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Wait(ctx, bytesFor(10*time.Second))
	if err == nil {
		t.Fatal("Wait returned nil on a cancelled context")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Wait took %v after its context ended", el)
	}
}

func TestPacerRealClockTwoSeconds(t *testing.T) {
	p := NewPacer(nil, 100*time.Millisecond, 0)
	chunk := bytesFor(10 * time.Millisecond)
	start := time.Now()
	for range 200 {
		if err := p.Wait(context.Background(), chunk); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 1800*time.Millisecond || el > 3*time.Second {
		t.Fatalf("2 s of audio paced in %v, want 1.8–3 s", el)
	}
}

package phone

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zaf/g711"
)

// FIFO tuning, in 8 kHz samples. The line-out hands its PCM over in
// blocks (50 ms from the direct backend; a sound card pipe may run a few
// hundred ms ahead at start), while the pacer takes 160 samples every
// 20 ms from the monotonic clock. The FIFO between them absorbs the
// blocks and the drift of a sound card's crystal against that clock.
//
// The prefill is larger than the longest stall a busy box gives the
// decoding goroutine (hundreds of ms with both cores saturated): the
// line-out then catches up in a burst the FIFO takes, and the phones hear
// no gap. Callers on hold never hear the line-out, so a second of latency
// against it costs nothing.
const (
	fifoCap     = 24000 // 3 s: the most a burst of the line-out may lead
	fifoPrefill = 8000  // 1 s buffered before music starts (again)
	fifoHigh    = 20000 // 2.5 s: above it a frame is dropped
	// resync is how late the pacer may fall (the box was suspended, the
	// process starved) before it re-anchors its timeline instead of
	// publishing a burst of frames to catch up.
	resync = time.Second
)

// Converter turns the line's PCM (44.1 kHz stereo s16le, as the direct
// backend writes it) into the telephone signal and publishes it to a Hub:
// Write takes the PCM without ever blocking the line-out; Run paces
// frames out every 20 ms.
type Converter struct {
	opt ConverterOptions
	hub *Hub

	// Written by the line-out's goroutine only (under wmu).
	wmu     sync.Mutex
	rs      *Resampler
	mono    []float32
	resamp  []float32
	partial [4]byte // a stereo frame split across two Writes
	npart   int

	mu        sync.Mutex
	ring      [fifoCap]float32
	head, n   int // ring read index and fill
	streaming bool
	repeated  bool
	tone      tone

	// Counters, for status and tests.
	frames   atomic.Uint64 // frames published
	silent   atomic.Uint64 // of them Silent
	drops    atomic.Uint64 // frames dropped at high water
	repeats  atomic.Uint64 // frames repeated at low water
	overflow atomic.Uint64 // samples lost to a full FIFO (pacer not keeping up)
	resyncs  atomic.Uint64 // timeline re-anchors after a stall

	sh *shaper // the pacer's goroutine only
}

// tone replaces the music while now < until.
type tone struct {
	until time.Time
	amp   float64 // peak sample value
	step  float64 // phase step per sample, radians
	phase float64
}

// ConverterOptions configure a Converter.
type ConverterOptions struct {
	// TargetDBm0 is the active level the music is brought to; 0 means
	// DefaultTargetDBm0.
	TargetDBm0 float64
	// RealtimePriority, if above 0, runs the pacer (and the RTP packets it
	// sends, Hub.Attach) on an OS thread of its own at this SCHED_FIFO
	// priority, so a busy box does not delay packets. Without the
	// privilege (CAP_SYS_NICE, or systemd's LimitRTPRIO) it runs at normal
	// priority and says so once.
	RealtimePriority int
	Logger           *slog.Logger
}

// NewConverter returns a converter publishing to hub.
func NewConverter(hub *Hub, o ConverterOptions) *Converter {
	if o.TargetDBm0 == 0 {
		o.TargetDBm0 = DefaultTargetDBm0
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Converter{
		opt:    o,
		hub:    hub,
		rs:     NewResampler(),
		mono:   make([]float32, resampChunk),
		resamp: make([]float32, 0, resampChunk*upL/downM+4),
		sh:     newShaper(o.TargetDBm0),
	}
}

// Hub is where the frames go.
func (c *Converter) Hub() *Hub { return c.hub }

// Write takes line PCM: s16le stereo at 44.1 kHz. It never blocks on the
// pacer for longer than a copy into the FIFO, and it always takes all of
// p (the line-out must not wait for the phones).
func (c *Converter) Write(p []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.npart > 0 {
		k := copy(c.partial[c.npart:], p)
		c.npart += k
		p = p[k:]
		if c.npart < 4 {
			return
		}
		c.npart = 0
		c.mixResample(c.partial[:])
	}
	whole := len(p) - len(p)%4
	for off := 0; off < whole; {
		n := min(whole-off, 4*len(c.mono))
		c.mixResample(p[off : off+n])
		off += n
	}
	c.npart = copy(c.partial[:], p[whole:])
}

// mixResample mixes whole stereo frames to mono, resamples them and
// appends the result to the FIFO.
func (c *Converter) mixResample(p []byte) {
	m := c.mono[:len(p)/4]
	for i := range m {
		l := int16(binary.LittleEndian.Uint16(p[4*i:]))
		r := int16(binary.LittleEndian.Uint16(p[4*i+2:]))
		m[i] = (float32(l) + float32(r)) * 0.5
	}
	out := c.rs.Process(m, c.resamp[:0])
	c.mu.Lock()
	for _, v := range out {
		if c.n == fifoCap {
			// Full: the pacer is not running or far behind. Keep the
			// newest music.
			c.head = (c.head + 1) % fifoCap
			c.n--
			c.overflow.Add(1)
		}
		c.ring[(c.head+c.n)%fifoCap] = v
		c.n++
	}
	c.mu.Unlock()
}

// Tone replaces the music with a sine of hz at level dbm0 for d, from
// now; d <= 0 ends a tone early. The level is exact on the phone line:
// the tone bypasses the level stage.
func (c *Converter) Tone(hz, dbm0 float64, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		c.tone = tone{}
		return
	}
	c.tone = tone{
		until: time.Now().Add(d),
		amp:   DBm0ToRMS(dbm0) * math.Sqrt2,
		step:  2 * math.Pi * hz / SampleRate,
	}
}

// Stats are the converter's counters.
type Stats struct {
	Frames, Silent, Drops, Repeats, Overflow, Resyncs, Limited uint64
	FIFO                                                       int // samples buffered now
}

// Stats returns the counters.
func (c *Converter) Stats() Stats {
	c.mu.Lock()
	n := c.n
	c.mu.Unlock()
	return Stats{
		Frames: c.frames.Load(), Silent: c.silent.Load(), Drops: c.drops.Load(),
		Repeats: c.repeats.Load(), Overflow: c.overflow.Load(), Resyncs: c.resyncs.Load(),
		Limited: c.sh.limiting.Load(), FIFO: n,
	}
}

// Run publishes one frame every 20 ms until ctx ends. Frame n is due at
// t0 + n·20 ms on the monotonic clock; the pacer sleeps to that absolute
// deadline, so a late wake-up is repaid on the next frame and nothing
// drifts however long it runs.
func (c *Converter) Run(ctx context.Context) error {
	clk, err := newRTClock(c.opt.RealtimePriority)
	if clk == nil {
		return fmt.Errorf("telephone signal clock: %w", err)
	}
	if err != nil {
		c.opt.Logger.Warn("telephone signal paced at normal priority: packets may be late on a busy box", "err", err)
	}
	var n int64
	var in [FrameSamples]float32
	var last *Frame
	for ctx.Err() == nil {
		due := n * int64(FrameDuration)
		if late := clk.since() - due; late > int64(resync) {
			clk.restart()
			n = 0
			c.resyncs.Add(1)
			continue
		}
		clk.sleepUntil(due) // at most 20 ms: ctx is seen within a frame
		if ctx.Err() != nil {
			break
		}
		f := new(Frame)
		c.next(&in, f, last)
		c.hub.Publish(f)
		c.frames.Add(1)
		if f.Silent {
			c.silent.Add(1)
		}
		last = f
		n++
	}
	return nil
}

// next makes the next frame: the tone, the music from the FIFO, a
// repeat of the last frame at low water, or silence.
func (c *Converter) next(in *[FrameSamples]float32, f, last *Frame) {
	c.mu.Lock()
	toneOn := !c.tone.until.IsZero() && time.Now().Before(c.tone.until)
	if !toneOn && !c.tone.until.IsZero() {
		c.tone = tone{}
	}
	var music bool
	switch {
	case c.n >= FrameSamples && (c.streaming || c.n >= fifoPrefill):
		c.streaming, c.repeated = true, false
		c.pop(in[:])
		if c.n > fifoHigh {
			// The line-out runs faster than this clock: skip a frame.
			var skip [FrameSamples]float32
			c.pop(skip[:])
			c.drops.Add(1)
		}
		music = true
	case c.streaming && !c.repeated && last != nil && !last.Silent && !toneOn:
		// Low water while music flows: the line-out's clock is slower.
		// One repeated frame buys 20 ms; a second shortfall in a row
		// means the music stopped.
		c.repeated = true
		*f = *last
		c.repeats.Add(1)
		c.mu.Unlock()
		return
	default:
		c.streaming = false
	}
	if toneOn {
		t := &c.tone
		for i := range f.PCM {
			f.PCM[i] = int16(math.Round(t.amp * math.Sin(t.phase)))
			t.phase += t.step
		}
		t.phase = math.Mod(t.phase, 2*math.Pi)
		c.mu.Unlock()
		encode(f)
		return
	}
	c.mu.Unlock()
	if music {
		c.sh.frame(in, f)
		return
	}
	f.Silent = true
	for i := range f.PCM {
		f.ULaw[i] = ulawSilence
		f.ALaw[i] = alawSilence
	}
}

var (
	ulawSilence = g711.EncodeUlawFrame(0)
	alawSilence = g711.EncodeAlawFrame(0)
)

// pop takes len(dst) samples off the FIFO; the caller holds mu and has
// checked they are there.
func (c *Converter) pop(dst []float32) {
	for i := range dst {
		dst[i] = c.ring[c.head]
		c.head = (c.head + 1) % fifoCap
	}
	c.n -= len(dst)
}

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
// blocks (100 ms from the direct backend; a sound card pipe may run a few
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
	wakes    atomic.Uint64 // idle periods ended by a receiver

	// idle is set while Run waits for a receiver: Write then only copies
	// the line PCM into recent (the last 1.2 s), so a box that plays to
	// its sound card alone pays a memcpy for the telephone signal, and
	// the first listener still hears music at once: the wake-up replays
	// recent into the FIFO's prefill.
	idle   atomic.Bool
	recent [recentBytes]byte // ring of line PCM, under wmu
	rHead  int               // index of the oldest byte
	rN     int               // bytes held
	rTotal uint64            // bytes put in since idle began (frame alignment)
	rLast  time.Time         // when the newest bytes came

	// idleAfter is how long the hub must have had no receiver before the
	// converter goes idle (tests shorten it).
	idleAfter time.Duration

	sh *shaper // the pacer's goroutine only
}

// Idle tuning. The converter goes idle only after the hub has had no
// receiver for idleAfter: an output that leaves for a moment (the RTP
// sender reopening, a PBX reconnecting its stream) comes back to a
// signal that never stopped, so what it hears continues on the frames'
// timeline. Only a receiver arriving after a real idle period hears the
// replay of the recent ring. A line-out that paused for longer than
// recentGap breaks the ring: what came before the pause is not replayed
// as if it were the music of the moment.
const (
	defaultIdleAfter = 10 * time.Second
	recentGap        = time.Second
)

// recentBytes is the line PCM kept while idle: 1.2 s, the FIFO's prefill
// and the warm-up frames, in whole stereo frames.
const recentBytes = 44100 * 4 * 12 / 10

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
		opt:       o,
		hub:       hub,
		rs:        NewResampler(),
		mono:      make([]float32, resampChunk),
		resamp:    make([]float32, 0, resampChunk*upL/downM+4),
		idleAfter: defaultIdleAfter,
		sh:        newShaper(o.TargetDBm0),
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
	if c.idle.Load() {
		c.keepRecent(p)
		return
	}
	c.write(p)
}

// keepRecent appends p to the recent ring, dropping the oldest bytes;
// the caller holds wmu.
func (c *Converter) keepRecent(p []byte) {
	now := time.Now()
	if c.rN > 0 && now.Sub(c.rLast) > recentGap {
		c.rTotal += uint64(c.rN) // forget what came before the pause
		c.rHead, c.rN = 0, 0
	}
	c.rLast = now
	if len(p) > recentBytes {
		c.rTotal += uint64(len(p) - recentBytes)
		p = p[len(p)-recentBytes:]
	}
	for len(p) > 0 {
		tail := (c.rHead + c.rN) % recentBytes
		k := copy(c.recent[tail:min(recentBytes, tail+len(p))], p)
		if free := recentBytes - c.rN; k > free {
			c.rHead = (c.rHead + k - free) % recentBytes
			c.rN = recentBytes - k
		}
		c.rN += k
		c.rTotal += uint64(k)
		p = p[k:]
	}
}

// replayRecent feeds the recent ring through the resampler into the
// FIFO, from its first whole stereo frame, and empties it; the caller
// holds wmu. A ring whose newest bytes are older than recentGap (the
// line-out stopped) is dropped: it is not the music of the moment.
func (c *Converter) replayRecent() {
	c.npart = 0
	if time.Since(c.rLast) > recentGap {
		c.rN = 0
	}
	skip := int((4 - (c.rTotal-uint64(c.rN))%4) % 4)
	skip = min(skip, c.rN)
	c.rHead = (c.rHead + skip) % recentBytes
	c.rN -= skip
	for c.rN > 0 {
		k := min(c.rN, recentBytes-c.rHead)
		c.write(c.recent[c.rHead : c.rHead+k])
		c.rHead = (c.rHead + k) % recentBytes
		c.rN -= k
	}
	c.rHead = 0
}

// write converts p into the FIFO; the caller holds wmu.
func (c *Converter) write(p []byte) {
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
		if !c.tone.until.IsZero() {
			c.endToneLocked()
		}
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
	// Idle is true while nobody listens and the converter does no work;
	// Wakes counts the idle periods a receiver ended.
	Idle  bool
	Wakes uint64
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
		Idle: c.idle.Load(), Wakes: c.wakes.Load(),
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
	quiet := int64(-1) // the frame from which the hub had no receiver
	for ctx.Err() == nil {
		if !c.hub.Idle() {
			quiet = -1
		} else if quiet < 0 {
			quiet = n
		} else if time.Duration(n-quiet)*FrameDuration >= c.idleAfter {
			if !c.sleep(ctx) {
				return nil
			}
			c.warmUp(&in)
			clk.restart()
			n, last, quiet = 0, nil, -1
			continue
		}
		due := n * int64(FrameDuration)
		if late := clk.since() - due; late > int64(resync) {
			clk.restart()
			n, quiet = 0, -1
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

// sleep is the idle period: the FIFO is emptied, Write keeps only the
// recent ring, and Run waits without a wake-up until a receiver arrives
// (false: ctx ended first). Then the ring is replayed into the FIFO and
// the level stage starts afresh on it, as at boot.
func (c *Converter) sleep(ctx context.Context) bool {
	c.wmu.Lock() // a Write under way finishes first
	c.idle.Store(true)
	// rTotal starts at the partial frame's bytes: the ring's first bytes
	// complete that frame, which replayRecent skips.
	c.rHead, c.rN, c.rTotal = 0, 0, uint64(c.npart)
	c.mu.Lock()
	c.emptyFIFOLocked()
	c.mu.Unlock()
	c.wmu.Unlock()
	for c.hub.Idle() { // a wake signal may be stale
		select {
		case <-ctx.Done():
			return false
		case <-c.hub.Wake():
		}
	}
	c.wmu.Lock()
	c.replayRecent() // the last second of music: no silent start
	c.idle.Store(false)
	c.wmu.Unlock()
	c.sh.restart()
	c.wakes.Add(1)
	return true
}

// warmFrames is how much of the replayed music the filters and the level
// stage see before the first frame goes out: their start (the resampler's
// and high-pass's transient, the first level reading) stays out of the
// stream.
const warmFrames = 10

// warmUp shapes and discards up to warmFrames frames from the FIFO,
// keeping at least the prefill.
func (c *Converter) warmUp(in *[FrameSamples]float32) {
	var scratch Frame
	for range warmFrames {
		c.mu.Lock()
		if c.n < fifoPrefill+FrameSamples {
			c.mu.Unlock()
			return
		}
		c.pop(in[:])
		c.mu.Unlock()
		c.sh.frame(in, &scratch)
	}
}

// next makes the next frame: the tone, the music from the FIFO, a
// repeat of the last frame at low water, or silence.
func (c *Converter) next(in *[FrameSamples]float32, f, last *Frame) {
	c.mu.Lock()
	toneOn := !c.tone.until.IsZero() && time.Now().Before(c.tone.until)
	if !toneOn && !c.tone.until.IsZero() {
		c.endToneLocked()
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

// endToneLocked ends the tone and drops what the FIFO holds: the line-out
// played its own tone meanwhile, and the level stage must not hear it (a
// second of a quiet tone through the level stage left the music up to
// 1.2 dB hot for seconds). The caller holds mu.
func (c *Converter) endToneLocked() {
	c.tone = tone{}
	c.emptyFIFOLocked()
}

// emptyFIFOLocked drops what the FIFO holds; it refills from the line and
// streams again after its prefill. The caller holds mu.
func (c *Converter) emptyFIFOLocked() {
	c.head, c.n, c.streaming, c.repeated = 0, 0, false, false
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

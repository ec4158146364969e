package phone

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/cmplx"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/zaf/g711"
)

// linePCM is n stereo frames of a 44.1 kHz sine at dbfs (full-scale sine
// = 0 dBFS), as the direct backend writes it, starting at sample start.
func linePCM(hz, dbfs float64, start, n int) []byte {
	return linePCM2(hz, dbfs, 0, 0, start, n)
}

// linePCM2 is two sines mixed; hz2 0 is none.
func linePCM2(hz, dbfs, hz2, dbfs2 float64, start, n int) []byte {
	amp := 32767 * math.Pow(10, dbfs/20)
	amp2 := 32767 * math.Pow(10, dbfs2/20)
	b := make([]byte, 4*n)
	for i := range n {
		x := float64(start+i) / InputRate
		s := amp * math.Sin(2*math.Pi*hz*x)
		if hz2 > 0 {
			s += amp2 * math.Sin(2*math.Pi*hz2*x)
		}
		v := int16(math.Round(s))
		binary.LittleEndian.PutUint16(b[4*i:], uint16(v))
		binary.LittleEndian.PutUint16(b[4*i+2:], uint16(v))
	}
	return b
}

// feed writes secs of a tone into c in the direct backend's 50 ms blocks
// and takes the frames the pacer would, without waiting for real time.
func feed(c *Converter, hz, dbfs, secs float64) []*Frame {
	return feed2(c, hz, dbfs, 0, 0, secs)
}

func feed2(c *Converter, hz, dbfs, hz2, dbfs2, secs float64) []*Frame {
	var frames []*Frame
	var in [FrameSamples]float32
	var last *Frame
	blocks := int(secs * 20)
	for b := range blocks {
		c.Write(linePCM2(hz, dbfs, hz2, dbfs2, b*2205, 2205))
		// 50 ms of input is 2.5 frames of output.
		for len(frames) < (b+1)*5/2 {
			f := new(Frame)
			c.next(&in, f, last)
			frames = append(frames, f)
			last = f
		}
	}
	return frames
}

func framesPCM(fs []*Frame) []float64 {
	var out []float64
	for _, f := range fs {
		for _, v := range f.PCM {
			out = append(out, float64(v))
		}
	}
	return out
}

func rms64(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(len(x)))
}

// toneAt is the amplitude of the hz component of x (8 kHz), by
// correlation: what a tuned meter would read.
func toneAt(x []float64, hz float64) float64 {
	var re, im float64
	for i, v := range x {
		p := 2 * math.Pi * hz * float64(i) / SampleRate
		re += v * math.Cos(p)
		im += v * math.Sin(p)
	}
	return 2 * math.Hypot(re, im) / float64(len(x))
}

func TestConverterLevelsMusicToTarget(t *testing.T) {
	for _, dbfs := range []float64{-30, -12, -3} {
		c := NewConverter(NewHub(), ConverterOptions{})
		fs := feed(c, 441, dbfs, 4)
		pcm := framesPCM(fs[len(fs)/2:])
		got := RMSToDBm0(rms64(pcm))
		t.Logf("441 Hz at %.0f dBFS in: %.2f dBm0 out", dbfs, got)
		if math.Abs(got-DefaultTargetDBm0) > 0.5 {
			t.Errorf("441 Hz at %.0f dBFS comes out at %.2f dBm0, want %.1f ± 0.5", dbfs, got, DefaultTargetDBm0)
		}
		// It is the same tone: nearly all of the power sits at 441 Hz.
		if a := toneAt(pcm, 441) / math.Sqrt2; 20*math.Log10(a/rms64(pcm)) < -0.2 {
			t.Errorf("441 Hz holds only %.2f dB of the output", 20*math.Log10(a/rms64(pcm)))
		}
	}
}

// TestConverterHoldsTargetForAMinute plays a constant 441 Hz sine for a
// minute of simulated frames, at the level a library rendition has
// (-18 LUFS is about -17 dBFS for this tone) and at a quiet and a loud
// one: once settled, every second must stay at the target, so a slow
// drift of the level stage (the estimate creeping, the gain walking off)
// shows here and not only on a box that has run for minutes.
func TestConverterHoldsTargetForAMinute(t *testing.T) {
	levels := []float64{-30, -17, -6}
	if raceOn {
		// One goroutine, nothing for the detector to find, and each
		// simulated minute costs ~5 s under it: the rendition level only.
		levels = levels[1:2]
	}
	for _, dbfs := range levels {
		c := NewConverter(NewHub(), ConverterOptions{})
		fs := feed(c, 441, dbfs, 60)
		lo, hi := math.Inf(1), math.Inf(-1)
		for sec := 5; (sec+1)*50 <= len(fs); sec++ {
			pcm := framesPCM(fs[sec*50 : (sec+1)*50])
			got := RMSToDBm0(rms64(pcm))
			// the tone itself, as a tuned meter reads it
			tone := RMSToDBm0(toneAt(pcm, 441) / math.Sqrt2)
			lo, hi = min(lo, got, tone), max(hi, got, tone)
			if math.Abs(got-DefaultTargetDBm0) > 0.5 || math.Abs(tone-DefaultTargetDBm0) > 0.5 {
				t.Errorf("441 Hz at %.0f dBFS, second %d: %.2f dBm0 (the tone %.2f), want %.1f ± 0.5", dbfs, sec, got, tone, DefaultTargetDBm0)
			}
		}
		st := c.Stats()
		t.Logf("441 Hz at %.0f dBFS in, seconds 5..60 out: %.2f .. %.2f dBm0; %+v", dbfs, lo, hi, st)
		if st.Drops+st.Repeats+st.Overflow+st.Limited != 0 {
			t.Errorf("a steady tone dropped, repeated, lost or limited frames: %+v", st)
		}
		if len(fs) < 60*50-5 {
			t.Errorf("%d frames from a minute of line PCM, want about 3000", len(fs))
		}
	}
}

func TestConverterLimiterNeverClipsG711(t *testing.T) {
	// A target level no music reaches without clipping: the limiter must
	// hold every sample under what µ-law and A-law encode.
	c := NewConverter(NewHub(), ConverterOptions{TargetDBm0: 3})
	fs := feed(c, 441, -6, 3)
	var peak int
	for _, f := range fs {
		for i, v := range f.PCM {
			peak = max(peak, abs(int(v)))
			if d := abs(int(g711.DecodeUlawFrame(f.ULaw[i])) - int(v)); d > 1100 {
				t.Fatalf("µ-law of %d decodes %d off", v, d)
			}
		}
	}
	if peak > limitPeak {
		t.Fatalf("peak %d over the limit %v", peak, limitPeak)
	}
	if c.Stats().Limited == 0 {
		t.Fatal("the limiter never engaged")
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// The 300-3400 Hz band: a tone outside it, mixed with 1 kHz at the same
// level, comes out far below the 1 kHz tone (the level stage scales
// both alike). Above 4 kHz it must also not alias into the band.
func TestConverterBandLimit(t *testing.T) {
	for _, tc := range []struct {
		hz, alias, maxDB float64
	}{
		{100, 100, -35},   // 4th-order high-pass: -38 dB an octave and a half down
		{5000, 3000, -80}, // would fold to 3 kHz
		{12000, 4000, -80},
		{441, 441, 0}, // in the band: passes within 0.5 dB (checked below)
	} {
		c := NewConverter(NewHub(), ConverterOptions{})
		fs := feed2(c, 1000, -20, tc.hz, -20, 3)
		pcm := framesPCM(fs[len(fs)/2:])
		ref := toneAt(pcm, 1000)
		got := 20 * math.Log10(toneAt(pcm, tc.alias)/ref)
		t.Logf("%.0f Hz beside 1 kHz: %.1f dB at %.0f Hz", tc.hz, got, tc.alias)
		if tc.maxDB == 0 {
			if math.Abs(got) > 0.5 {
				t.Errorf("441 Hz comes out %.2f dB off 1 kHz, want within 0.5 dB", got)
			}
			continue
		}
		if got > tc.maxDB {
			t.Errorf("%.0f Hz comes out at %.1f dB relative to 1 kHz at %.0f Hz, want at most %.1f dB", tc.hz, got, tc.alias, tc.maxDB)
		}
	}
}

func TestConverterSilenceWithoutMusic(t *testing.T) {
	c := NewConverter(NewHub(), ConverterOptions{})
	var in [FrameSamples]float32
	f := new(Frame)
	c.next(&in, f, nil)
	if !f.Silent || f.ULaw[0] != 0xFF || f.ALaw[0] != 0xD5 {
		t.Fatalf("no music: Silent=%v ulaw=%#x alaw=%#x", f.Silent, f.ULaw[0], f.ALaw[0])
	}
	// Less than the prefill (1 s) stays silent; past it, music.
	for b := range 19 {
		c.Write(linePCM(441, -10, b*2205, 2205))
	}
	c.next(&in, f, nil)
	if !f.Silent {
		t.Fatal("950 ms buffered (under the prefill) already played")
	}
	for b := 19; b < 21; b++ {
		c.Write(linePCM(441, -10, b*2205, 2205))
	}
	f = new(Frame)
	c.next(&in, f, nil)
	if f.Silent {
		t.Fatal("1.05 s buffered and still silent")
	}
}

func TestConverterDropsAtHighWaterRepeatsAtLow(t *testing.T) {
	c := NewConverter(NewHub(), ConverterOptions{})
	var in [FrameSamples]float32
	// 2.7 s of music at once: over the high water mark (2.5 s).
	for b := range 54 {
		c.Write(linePCM(441, -10, b*2205, 2205))
	}
	f := new(Frame)
	c.next(&in, f, nil)
	if c.Stats().Drops != 1 {
		t.Fatalf("drops = %d, want 1", c.Stats().Drops)
	}
	// Drain it, then one frame short: one repeat, then silence.
	last := f
	for c.Stats().FIFO >= FrameSamples {
		f = new(Frame)
		c.next(&in, f, last)
		last = f
	}
	f = new(Frame)
	c.next(&in, f, last)
	if c.Stats().Repeats != 1 || f.PCM != last.PCM {
		t.Fatalf("repeats = %d, frame repeated = %v", c.Stats().Repeats, f.PCM == last.PCM)
	}
	last = f
	f = new(Frame)
	c.next(&in, f, last)
	if !f.Silent || c.Stats().Repeats != 1 {
		t.Fatalf("second shortfall: silent=%v repeats=%d", f.Silent, c.Stats().Repeats)
	}
}

func TestConverterTone(t *testing.T) {
	c := NewConverter(NewHub(), ConverterOptions{})
	c.Tone(1000, -10, time.Hour)
	var in [FrameSamples]float32
	var fs []*Frame
	for range 50 {
		f := new(Frame)
		c.next(&in, f, nil)
		fs = append(fs, f)
	}
	pcm := framesPCM(fs)
	if got := RMSToDBm0(rms64(pcm)); math.Abs(got+10) > 0.05 {
		t.Fatalf("tone at %.3f dBm0, want -10", got)
	}
	if a := toneAt(pcm, 1000); math.Abs(a-DBm0ToRMS(-10)*math.Sqrt2) > 2 {
		t.Fatalf("1 kHz amplitude %.1f, want %.1f", a, DBm0ToRMS(-10)*math.Sqrt2)
	}
	c.Tone(0, 0, 0)
	f := new(Frame)
	c.next(&in, f, nil)
	if !f.Silent {
		t.Fatal("the tone went on after it was ended")
	}
}

func TestDBm0(t *testing.T) {
	// G.711: a full-scale sine is +3.17 dBm0.
	if got := RMSToDBm0(32767 / math.Sqrt2); math.Abs(got-3.17) > 1e-9 {
		t.Fatalf("full-scale sine = %v dBm0", got)
	}
	if got := RMSToDBm0(DBm0ToRMS(-19)); math.Abs(got+19) > 1e-9 {
		t.Fatalf("round trip = %v", got)
	}
}

// The pacer publishes frame n at t0 + n·20 ms: measured at a subscriber,
// over 3 s, with no sequence gap.
//
// The times are taken where the RTP sender sends (Hub.Attach, in the
// pacer's real-time thread, as mohd runs it); a subscriber's goroutine
// would add the Go scheduler's latency on a loaded machine.
func TestConverterPacing(t *testing.T) {
	hub := NewHub()
	c := NewConverter(hub, ConverterOptions{RealtimePriority: 10})
	type seen struct {
		at     time.Time
		seq    uint64
		silent bool
	}
	got := make(chan seen, 200)
	detach := hub.Attach(func(f *Frame) { got <- seen{time.Now(), f.Seq, f.Silent} })
	defer detach()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var arrivals []time.Time
	var seqs []uint64
	for len(arrivals) < 150 {
		f := <-got
		arrivals = append(arrivals, f.at)
		seqs = append(seqs, f.seq)
		if !f.silent {
			t.Fatal("a frame with music while none was written")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence gap: %d after %d", seqs[i], seqs[i-1])
		}
	}
	var dev []float64
	t0 := arrivals[0]
	for i, a := range arrivals {
		dev = append(dev, math.Abs(float64(a.Sub(t0.Add(time.Duration(i)*FrameDuration)))))
	}
	sort.Float64s(dev)
	p99 := time.Duration(dev[len(dev)*99/100])
	end := arrivals[len(arrivals)-1].Sub(t0) - time.Duration(len(arrivals)-1)*FrameDuration
	t.Logf("p99 off schedule %v, last frame %v off", p99, end)
	// 5 ms is the contract; under the race detector (every access
	// instrumented, on a shared 2-core machine) only gross errors show: a
	// drifting or relative-sleep pacer is off by far more.
	bound := 5 * time.Millisecond
	if raceOn {
		bound = 25 * time.Millisecond
	}
	if p99 > bound {
		t.Fatalf("p99 %v off schedule, want under %v", p99, bound)
	}
	if end > bound || end < -bound {
		t.Fatalf("the last frame is %v off: the pacer drifts", end)
	}
}

func BenchmarkConverterFrame(b *testing.B) {
	c := NewConverter(NewHub(), ConverterOptions{})
	pcm := linePCM(441, -10, 0, 882) // 20 ms of line PCM
	var in [FrameSamples]float32
	f, last := new(Frame), new(Frame)
	for range 10 {
		c.Write(pcm)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Write(pcm)
		c.next(&in, f, last)
	}
}

// playLine writes a continuous 441 Hz sine at -10 dBFS into c in the
// direct backend's 50 ms blocks, on the real clock (absolute deadlines,
// so a late wake-up is caught up in a burst the FIFO takes), until ctx
// ends or, if stop is not nil, until stop is closed.
func playLine(ctx context.Context, c *Converter, stop <-chan struct{}) {
	start := time.Now()
	for b := 0; ctx.Err() == nil; b++ {
		c.Write(linePCM(441, -10, b*2205, 2205))
		if d := time.Until(start.Add(time.Duration(b+1) * 50 * time.Millisecond)); d > 0 {
			select {
			case <-ctx.Done():
			case <-stop:
				return
			case <-time.After(d):
			}
		}
	}
}

// frameTone is the 441 Hz component of frame f, fitted against one
// reference sine running on the frame's sequence number: frames that
// carry consecutive line audio for consecutive numbers have the same
// phase, whatever frames a receiver missed in between.
func frameTone(f *Frame) complex128 {
	w := 2 * math.Pi * 441 / SampleRate
	var cc, cs, ss, xc, xs float64
	for i, v := range f.PCM {
		k := float64(f.Seq*FrameSamples + uint64(i))
		c, s := math.Cos(w*k), math.Sin(w*k)
		cc += c * c
		cs += c * s
		ss += s * s
		xc += float64(v) * c
		xs += float64(v) * s
	}
	det := cc*ss - cs*cs
	return complex((xc*ss-xs*cs)/det, -(xs*cc-xc*cs)/det)
}

// checkContinuous fails if the music frames fs (in order) are not one
// continuous sine on the frames' own timeline: a phase step means audio
// was skipped or replayed, a level step a splice or a gain jump.
func checkContinuous(t *testing.T, what string, fs []*Frame) {
	t.Helper()
	var prev complex128
	var worstPhase, worstStep float64
	n := 0
	for _, f := range fs {
		if f.Silent {
			t.Errorf("%s: frame %d is silent in the middle of the music", what, f.Seq)
			continue
		}
		z := frameTone(f)
		if n > 0 {
			worstPhase = max(worstPhase, math.Abs(cmplx.Phase(z/prev)))
			worstStep = max(worstStep, math.Abs(20*math.Log10(cmplx.Abs(z)/cmplx.Abs(prev))))
		}
		prev = z
		n++
	}
	t.Logf("%s: %d frames, worst frame to frame: phase %.4f rad, level %.3f dB", what, n, worstPhase, worstStep)
	if n < 2 {
		t.Errorf("%s: %d music frames, want a stream", what, n)
	}
	// One sample skipped or repeated moves the phase by 0.35 rad.
	if worstPhase > 0.1 {
		t.Errorf("%s: the phase jumps %.3f rad between two frames: music skipped or replayed", what, worstPhase)
	}
	if worstStep > 0.3 {
		t.Errorf("%s: the level jumps %.2f dB between two frames", what, worstStep)
	}
}

// runConverter runs c until the test ends.
func runConverter(t *testing.T, c *Converter) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ctx
}

// TestConverterReattachIsSeamless: an output that leaves the hub for a
// moment and comes back (the RTP sender reopening, a PBX reconnecting
// its HTTP stream at once) while the line plays on must hear the music
// continue on the signal's timeline — never the converter going idle and
// replaying its ring of old line PCM into a stream that already played.
// (The first idle converter did: a 100 ms absence cost a 2.9 rad jump.)
func TestConverterReattachIsSeamless(t *testing.T) {
	hub := NewHub()
	c := NewConverter(hub, ConverterOptions{})
	ctx := runConverter(t, c)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); playLine(ctx, c, stop) }()
	defer func() { close(stop); wg.Wait() }()

	var mu sync.Mutex
	var tapped []*Frame
	tap := func(f *Frame) {
		mu.Lock()
		tapped = append(tapped, f)
		mu.Unlock()
	}
	detach := hub.Attach(tap)
	// The prefill, then a second of the level stage settling.
	time.Sleep(2500 * time.Millisecond)
	for range 3 {
		detach()
		time.Sleep(100 * time.Millisecond)
		detach = hub.Attach(tap)
		time.Sleep(700 * time.Millisecond)
	}
	detach()

	// A stream that ends and a new one at once (a PBX reconnecting).
	sub := hub.Subscribe("a", 500)
	time.Sleep(700 * time.Millisecond)
	sub.Close()
	sub2 := hub.Subscribe("b", 500)
	time.Sleep(700 * time.Millisecond)
	sub2.Close()
	var subbed []*Frame
	for _, s := range []*Sub{sub, sub2} {
		for f := range s.C() {
			subbed = append(subbed, f)
		}
	}

	mu.Lock()
	var music []*Frame
	for _, f := range tapped {
		if f.Seq >= 100 { // from the second second on: the level has settled
			music = append(music, f)
		}
	}
	mu.Unlock()
	checkContinuous(t, "tap detached and attached again", music)
	checkContinuous(t, "stream closed and another opened", subbed)
	if st := c.Stats(); st.Drops+st.Repeats+st.Resyncs+st.Overflow+st.Wakes != 0 {
		t.Errorf("frames dropped, repeated or lost, or the converter slept: %+v", st)
	}
}

// TestConverterAttachedKeepsAwake: an RTP output is attached for the
// whole run, so the converter never goes idle and the stream never
// replays: one frame every 20 ms however long the run.
func TestConverterAttachedKeepsAwake(t *testing.T) {
	hub := NewHub()
	c := NewConverter(hub, ConverterOptions{})
	c.idleAfter = 100 * time.Millisecond
	var frames []*Frame
	var mu sync.Mutex
	detach := hub.Attach(func(f *Frame) { mu.Lock(); frames = append(frames, f); mu.Unlock() })
	defer detach()
	start := time.Now()
	ctx := runConverter(t, c)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); playLine(ctx, c, stop) }()
	time.Sleep(2500 * time.Millisecond)
	close(stop) // the player stops too: still no sleep while attached
	<-done
	time.Sleep(500 * time.Millisecond)
	st := c.Stats()
	mu.Lock()
	n := len(frames)
	mu.Unlock()
	want := int(time.Since(start) / FrameDuration)
	t.Logf("%d frames in %v (%d due); %+v", n, time.Since(start).Round(time.Millisecond), want, st)
	if st.Idle || st.Wakes != 0 {
		t.Fatalf("the converter went idle with a receiver attached: %+v", st)
	}
	if n < want-10 {
		t.Fatalf("%d frames published, want about %d", n, want)
	}
}

// TestConverterIdleWithoutReceivers: a box whose only output is its
// sound card runs the converter too (an HTTP stream may be asked for at
// any time); with nobody listening it must do nothing — no frames, no
// resampling — and the first listener must hear the music at once, at
// the target level, not a second of silence or a gain ramp.
func TestConverterIdleWithoutReceivers(t *testing.T) {
	hub := NewHub()
	c := NewConverter(hub, ConverterOptions{})
	c.idleAfter = 200 * time.Millisecond
	ctx := runConverter(t, c)
	go playLine(ctx, c, nil)

	deadline := time.Now().Add(5 * time.Second)
	for !c.Stats().Idle {
		if time.Now().After(deadline) {
			t.Fatalf("not idle 5 s after the last receiver: %+v", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := c.Stats()
	time.Sleep(1500 * time.Millisecond) // the recent ring fills
	if st := c.Stats(); st.Frames != before.Frames || st.FIFO != 0 || !st.Idle {
		t.Fatalf("with no receiver: frames %d → %d, FIFO %d; want no frames, no resampling", before.Frames, st.Frames, st.FIFO)
	}
	sub := hub.Subscribe("test", 500)
	var fs []*Frame
	for len(fs) < 150 {
		select {
		case f := <-sub.C():
			fs = append(fs, f)
		case <-time.After(2 * time.Second):
			t.Fatalf("no frame within 2 s; %d so far", len(fs))
		}
	}
	sub.Close()
	if fs[0].Silent {
		t.Fatal("the first frame after the first receiver is silent; want the music at once")
	}
	// The first 3 s at the target, from the first frame on.
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := 0; i+10 <= len(fs); i += 10 {
		l := RMSToDBm0(rms64(framesPCM(fs[i : i+10])))
		lo, hi = min(lo, l), max(hi, l)
	}
	t.Logf("first 3 s after the wake: %.2f .. %.2f dBm0; %+v", lo, hi, c.Stats())
	if lo < DefaultTargetDBm0-1 || hi > DefaultTargetDBm0+1 {
		t.Errorf("first 3 s after the wake between %.2f and %.2f dBm0, want %.1f ± 1", lo, hi, DefaultTargetDBm0)
	}
	checkContinuous(t, "the stream after the wake", fs)
	if st := c.Stats(); st.Wakes != 1 {
		t.Errorf("wakes = %d, want 1", st.Wakes)
	}
}

// TestConverterIdleForgetsStoppedLine: music the line-out played before
// it stopped (the player stopped, the box in silence) is not replayed to
// a listener arriving long after: that is silence now.
func TestConverterIdleForgetsStoppedLine(t *testing.T) {
	hub := NewHub()
	c := NewConverter(hub, ConverterOptions{})
	c.idleAfter = 100 * time.Millisecond
	ctx := runConverter(t, c)
	stop := make(chan struct{})
	go playLine(ctx, c, stop)
	for !c.Stats().Idle {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond) // the ring holds a second of music
	close(stop)
	time.Sleep(recentGap + 200*time.Millisecond)
	sub := hub.Subscribe("late", 100)
	defer sub.Close()
	for i := range 25 {
		select {
		case f := <-sub.C():
			if !f.Silent {
				t.Fatalf("frame %d after the wake carries music the line played %v ago", i, recentGap)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no frame within 2 s of the receiver")
		}
	}
}

// TestConverterRecentRing: the idle ring keeps the newest 1.2 s in frame
// order across wraps and odd-sized writes, and a replay starts on a whole
// stereo frame.
func TestConverterRecentRing(t *testing.T) {
	c := NewConverter(NewHub(), ConverterOptions{})
	c.idle.Store(true)
	var all []byte
	for i := 0; len(all) < 3*recentBytes; i++ {
		n := 1 + (i*7919)%5000 // odd sizes, frames split across writes
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(len(all) + j)
		}
		all = append(all, b...)
		c.Write(b)
	}
	if c.rN != recentBytes {
		t.Fatalf("ring holds %d bytes, want %d", c.rN, recentBytes)
	}
	got := make([]byte, 0, c.rN)
	for i := 0; i < c.rN; i++ {
		got = append(got, c.recent[(c.rHead+i)%recentBytes])
	}
	if !bytes.Equal(got, all[len(all)-recentBytes:]) {
		t.Fatal("the ring does not hold the newest bytes in order")
	}
	if off := (c.rTotal - uint64(c.rN)) % 4; off != uint64(len(all)-recentBytes)%4 {
		t.Fatalf("ring start at frame offset %d, want %d", off, (len(all)-recentBytes)%4)
	}
}

// After a test tone the music comes back at the target level: the line's
// own tone, still in the FIFO when the telephone tone ends, must not
// reach the level stage.
func TestConverterMusicLevelAfterTone(t *testing.T) {
	c := NewConverter(NewHub(), ConverterOptions{})
	feed(c, 441, -17, 10)
	c.Tone(1000, -25, time.Hour)
	feed(c, 1000, -40, 3) // the line-out's tone, much quieter than the music
	c.Tone(0, 0, 0)
	fs := feed(c, 441, -17, 6)
	var music int
	for music < len(fs) && fs[music].Silent {
		music++
	}
	if music > 75 {
		t.Errorf("%d silent frames after the tone, want at most the FIFO's prefill", music)
	}
	for sec := 1; (sec+1)*50+music <= len(fs); sec++ {
		pcm := framesPCM(fs[music+sec*50 : music+(sec+1)*50])
		if got := RMSToDBm0(rms64(pcm)); math.Abs(got-DefaultTargetDBm0) > 0.3 {
			t.Errorf("second %d of music after the tone: %.2f dBm0, want %.1f ± 0.3", sec, got, DefaultTargetDBm0)
		}
	}
}

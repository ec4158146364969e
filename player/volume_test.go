package player

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestGainTaper(t *testing.T) {
	for _, tc := range []struct {
		volume int
		gain   float64
		db     float64
	}{
		{100, 1, 0},
		{90, 0.729, -2.745},
		{80, 0.512, -5.815},
		{50, 0.125, -18.062},
		{25, 0.015625, -36.124},
		{10, 0.001, -60},
		{1, 1e-6, -120},
		{0, 0, math.Inf(-1)},
		{-7, 0, math.Inf(-1)}, // clamped
		{130, 1, 0},           // clamped
	} {
		g := VolumeGain(tc.volume)
		if math.Abs(g-tc.gain) > 1e-12 {
			t.Errorf("VolumeGain(%d) = %v, want %v", tc.volume, g, tc.gain)
		}
		if db := 20 * math.Log10(g); math.Abs(db-tc.db) > 0.01 && !(math.IsInf(db, -1) && math.IsInf(tc.db, -1)) {
			t.Errorf("VolumeGain(%d) = %.3f dB, want %.3f dB", tc.volume, db, tc.db)
		}
	}
	// A volume slider must never go quieter as it goes up.
	for v := 1; v <= 100; v++ {
		if VolumeGain(v) <= VolumeGain(v-1) {
			t.Fatalf("taper not increasing at %d", v)
		}
	}
}

func TestGainUnityIsBitExact(t *testing.T) {
	pcm := make([]byte, 44100)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pcm {
		pcm[i] = byte(r.Uint32())
	}
	pcm[0], pcm[1] = 0x00, 0x80 // -32768
	want := bytes.Clone(pcm)
	g := NewGain(100)
	g.Apply(pcm)
	if !bytes.Equal(pcm, want) {
		t.Fatal("volume 100 changed the PCM")
	}
	// Also after a ramp down and back up has landed.
	g.Set(20)
	g.Apply(make([]byte, 2*GainRamp*BytesPerFrame))
	g.Set(100)
	g.Apply(make([]byte, 2*GainRamp*BytesPerFrame))
	g.Apply(pcm)
	if !bytes.Equal(pcm, want) {
		t.Fatal("volume 100 after a ramp changed the PCM")
	}
}

func TestGainZeroIsExactSilence(t *testing.T) {
	pcm := levelTestSine(1000, 32767, 4410, true, true)
	NewGain(0).Apply(pcm)
	if !bytes.Equal(pcm, make([]byte, len(pcm))) {
		t.Fatal("volume 0 left non-zero samples")
	}
	// After a ramp down the tail is exact zeros too.
	g := NewGain(100)
	g.Set(0)
	g.Apply(levelTestSine(1000, 32767, GainRamp, true, true))
	pcm = levelTestSine(1000, 32767, 4410, true, true)
	g.Apply(pcm)
	if !bytes.Equal(pcm, make([]byte, len(pcm))) {
		t.Fatal("ramp to 0 did not end in exact silence")
	}
}

func TestGainSteadyLevel(t *testing.T) {
	for _, tc := range []struct {
		volume int
		in     int16
		want   int16
	}{
		{50, 10000, 1250},
		{50, -10000, -1250},
		{80, 32767, 16777}, // 32767*0.512 = 16776.7
		{10, 32767, 33},
		{90, -32768, -23888},
	} {
		g := NewGain(tc.volume)
		pcm := levelTestDC(tc.in, 100)
		g.Apply(pcm)
		for i := 0; i < len(pcm); i += 2 {
			if got := int16(binary.LittleEndian.Uint16(pcm[i:])); got != tc.want {
				t.Fatalf("volume %d on %d: got %d, want %d", tc.volume, tc.in, got, tc.want)
			}
		}
	}
}

// samplesOf returns one channel of s16le stereo.
func samplesOf(pcm []byte, ch int) []int {
	out := make([]int, 0, len(pcm)/4)
	for i := ch * 2; i+2 <= len(pcm); i += 4 {
		out = append(out, int(int16(binary.LittleEndian.Uint16(pcm[i:]))))
	}
	return out
}

// applyInBlocks feeds pcm through g in uneven blocks, as a decoder would.
func applyInBlocks(g *Gain, pcm []byte, sizes ...int) {
	for off, k := 0, 0; off < len(pcm); k++ {
		n := min(sizes[k%len(sizes)]*BytesPerFrame, len(pcm)-off)
		g.Apply(pcm[off : off+n])
		off += n
	}
}

func TestGainRampHasNoClick(t *testing.T) {
	t.Run("DC full scale 100 to 0", func(t *testing.T) {
		g := NewGain(100)
		pcm := levelTestDC(-32768, SampleRate/5)
		applyInBlocks(g, pcm[:441*BytesPerFrame], 441)
		g.Set(0)
		applyInBlocks(g, pcm[441*BytesPerFrame:], 1152, 37, 500)
		for ch := range 2 {
			s := samplesOf(pcm, ch)
			// The ramp moves 32768 over GainRamp frames: ≤ 25 LSB a step.
			// A hard jump would move 32768 in one step.
			maxStep := 26 // 32768 / (30 ms of frames), rounded up
			firstZero := -1
			for i := 1; i < len(s); i++ {
				if d := abs(s[i] - s[i-1]); d > maxStep {
					t.Fatalf("ch%d: step of %d LSB at frame %d, want ≤ %d", ch, d, i, maxStep)
				}
				if firstZero < 0 && s[i] == 0 {
					firstZero = i
				}
			}
			rampMs := float64(firstZero-441) * 1000 / SampleRate
			if rampMs < 20 || rampMs > 50 {
				t.Fatalf("ch%d: ramp took %.1f ms, want 20–50", ch, rampMs)
			}
			for i := firstZero; i < len(s); i++ {
				if s[i] != 0 {
					t.Fatalf("ch%d: non-zero sample %d after the ramp ended", ch, s[i])
				}
			}
		}
	})
	t.Run("sine with jumps 100-0-100-30", func(t *testing.T) {
		const amp, freq = 30000.0, 1000.0
		// A smooth signal's second difference is bounded by amp·ω² (≈ 610
		// here); a gain step shows as a spike far above it (thousands of
		// LSB for a hard switch, even near a zero crossing).
		w := 2 * math.Pi * freq / SampleRate
		limit := int(amp*w*w) + 2*26 + 2
		g := NewGain(100)
		pcm := levelTestSine(freq, amp, SampleRate/2, true, true)
		step := 5 * 441 * BytesPerFrame // 50 ms
		g.Apply(pcm[:step])
		g.Set(0)
		applyInBlocks(g, pcm[step:2*step], 100)
		g.Set(100)
		g.Apply(pcm[2*step : 2*step+441*BytesPerFrame]) // change again mid-ramp
		g.Set(30)
		applyInBlocks(g, pcm[2*step+441*BytesPerFrame:], 1152)
		for ch := range 2 {
			s := samplesOf(pcm, ch)
			for i := 1; i+1 < len(s); i++ {
				if d := abs(s[i+1] - 2*s[i] + s[i-1]); d > limit {
					t.Fatalf("ch%d: click (2nd difference %d, limit %d) at frame %d", ch, d, limit, i)
				}
			}
		}
		// The last 50 ms are at volume 30 (0.027) and no louder.
		tail := pcm[len(pcm)-step:]
		if got, want := PeakDBFS(tail), 20*math.Log10(amp*0.027/32768); math.Abs(got-want) > 0.1 {
			t.Fatalf("peak after ramps %.2f dBFS, want %.2f", got, want)
		}
	})
}

func TestGainSetFromOtherGoroutine(t *testing.T) {
	g := NewGain(50)
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := range 101 {
			g.Set(v)
		}
	})
	pcm := levelTestSine(441, 20000, 441, true, true)
	for range 200 {
		g.Apply(pcm)
	}
	wg.Wait()
	if g.Volume() != 100 {
		t.Fatalf("Volume = %d, want 100", g.Volume())
	}
}

func TestGainOddLengthsDoNotPanic(t *testing.T) {
	g := NewGain(100)
	g.Set(40)
	for _, n := range []int{0, 1, 2, 3, 5, 7} {
		g.Apply(make([]byte, n))
	}
	g.Set(0)
	b := []byte{1, 2, 3}
	g.Apply(b)
	g.Apply(make([]byte, GainRamp*BytesPerFrame))
	b = []byte{1, 2, 3}
	g.Apply(b)
	if b[0] != 0 || b[1] != 0 || b[2] != 3 {
		t.Fatalf("mute on 3 bytes = %v, want the whole sample zeroed and the stray byte kept", b)
	}
}

func TestGainSaturate16(t *testing.T) {
	for in, want := range map[float64]int16{40000: 32767, -40000: -32768, 32767: 32767, -32768: -32768, 12.0: 12} {
		if got := saturate16(in); got != want {
			t.Errorf("saturate16(%v) = %d, want %d", in, got, want)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

package imagetest

import (
	"math"
	"math/rand/v2"
	"testing"
)

// music is a reference that never repeats within itself: tones plus noise.
func music(frames, rate int) []float64 {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]float64, frames)
	for i := range out {
		t := float64(i) / float64(rate)
		out[i] = 0.3*math.Sin(2*math.Pi*220*t) + 0.2*math.Sin(2*math.Pi*331*t*(1+t/10)) + 0.05*r.NormFloat64()
	}
	return out
}

func loopOf(ref []float64, loops int, gain float64, lead int) []float64 {
	rec := make([]float64, lead)
	for l := 0; l < loops; l++ {
		for _, v := range ref {
			rec = append(rec, math.Round(gain*v*32768)/32768)
		}
	}
	return rec
}

func TestCheckLoop(t *testing.T) {
	const rate = 8000
	ref := music(rate*3/2, rate)
	seamAt := func(loops int) int { return 1000 + loops*len(ref) }
	tests := []struct {
		name       string
		rec        func() []float64
		wantBreaks bool
		minSeams   int
		seamBreaks bool // the break is at a loop point
	}{
		{"seamless loop", func() []float64 { return loopOf(ref, 4, 0.7, 1000) }, false, 3, false},
		{"2 ms hole at the seam", func() []float64 {
			rec := loopOf(ref, 4, 0.7, 1000)
			at := seamAt(2)
			hole := make([]float64, rate/500)
			return append(append(append([]float64{}, rec[:at]...), hole...), rec[at:]...)
		}, true, 0, true},
		{"1 ms dropped at the seam", func() []float64 {
			rec := loopOf(ref, 4, 0.7, 1000)
			at := seamAt(1)
			return append(append([]float64{}, rec[:at]...), rec[at+rate/1000:]...)
		}, true, 0, true},
		{"click mid-track", func() []float64 {
			rec := loopOf(ref, 3, 0.7, 1000)
			rec[seamAt(1)+rate/2] = 0.99
			return rec
		}, true, 0, false},
		{"underrun mid-track, clean loop points", func() []float64 {
			rec := loopOf(ref, 5, 0.7, 1000)
			at := seamAt(2) + len(ref)/2
			hole := make([]float64, rate/5)
			return append(append(append([]float64{}, rec[:at]...), hole...), rec[at:]...)
		}, true, 2, false},
		{"encoder padding repeated at every seam", func() []float64 {
			var rec []float64
			for l := 0; l < 4; l++ {
				rec = append(rec, loopOf(ref, 1, 0.7, 0)...)
				rec = append(rec, make([]float64, 1152)...)
			}
			return rec
		}, true, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := checkLoop(tc.rec(), ref, rate)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(res.Breaks) > 0; got != tc.wantBreaks {
				t.Fatalf("breaks %v (worst window %.1f dB, max silence %.1f ms), want breaks: %v",
					res.Breaks, res.WorstDB, res.MaxSilenceMs, tc.wantBreaks)
			}
			if res.CleanSeams < tc.minSeams {
				t.Fatalf("crossed %d loop points cleanly, want at least %d", res.CleanSeams, tc.minSeams)
			}
			if got := res.SeamBreaks > 0; got != tc.seamBreaks {
				t.Fatalf("breaks at loop points: %d (breaks at %v of %d), want some: %v", res.SeamBreaks, res.BreaksAt, len(ref), tc.seamBreaks)
			}
			if !tc.wantBreaks && math.Abs(res.Gain-0.7) > 0.01 {
				t.Fatalf("gain %.3f, want 0.7", res.Gain)
			}
		})
	}
}

func TestCheckLoopSilent(t *testing.T) {
	if _, err := checkLoop(make([]float64, 8000), music(4000, 8000), 8000); err == nil {
		t.Fatal("a silent recording passed")
	}
}

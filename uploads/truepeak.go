package uploads

import (
	"math"

	"github.com/mohproject/moh/internal/kaiser"
)

// truePeak estimates the inter-sample peak of one channel by oversampling
// (BS.1770-4 Annex 2): 4x below 96 kHz, 2x below 192 kHz, none above, with a
// 12-taps-per-phase windowed-sinc polyphase interpolator (the length of the
// standard's own example filter). Fixed-size arrays keep the inner loop
// free of bounds checks: this is the meter's hot path.
type truePeak struct {
	factor int
	phases [4][tpTaps]float64  // phases[p][k] multiplies the k-th oldest sample
	hist   [2 * tpTaps]float64 // circular history written twice, so a window is contiguous
	pos    int
	peak   float64
}

const tpTaps = 12

func tpFilter(factor int) (ph [4][tpTaps]float64) {
	n := factor * tpTaps
	c := float64(n-1) / 2
	// Kaiser window, beta 7: flat to 0.1 dB up to 15 kHz at 44.1 kHz,
	// ample for a peak meter.
	w := kaiser.Window(n, 7)
	for i := 0; i < n; i++ {
		t := (float64(i) - c) / float64(factor)
		s := 1.0
		if t != 0 {
			s = math.Sin(math.Pi*t) / (math.Pi * t)
		}
		// Tap i of phase i%factor applies to the sample i/factor steps
		// back; store oldest first to match the history window.
		ph[i%factor][tpTaps-1-i/factor] = s * w[i]
	}
	return ph
}

func newTruePeak(rate int) truePeak {
	f := 4
	switch {
	case rate >= 192000:
		f = 1
	case rate >= 96000:
		f = 2
	}
	t := truePeak{factor: f}
	if f > 1 {
		t.phases = tpFilter(f)
	}
	return t
}

func (t *truePeak) push(x float64) {
	if a := math.Abs(x); a > t.peak {
		t.peak = a // the sample peak is a lower bound of the true peak
	}
	if t.factor == 1 {
		return
	}
	t.pos++
	if t.pos == tpTaps {
		t.pos = 0
	}
	t.hist[t.pos] = x
	t.hist[t.pos+tpTaps] = x
	w := (*[tpTaps]float64)(t.hist[t.pos+1 : t.pos+1+tpTaps])
	if t.factor == 4 {
		// The common case, with four independent sums so the CPU can
		// overlap them.
		c0, c1, c2, c3 := &t.phases[0], &t.phases[1], &t.phases[2], &t.phases[3]
		var y0, y1, y2, y3 float64
		for k := 0; k < tpTaps; k++ {
			v := w[k]
			y0 += c0[k] * v
			y1 += c1[k] * v
			y2 += c2[k] * v
			y3 += c3[k] * v
		}
		t.peak = max(t.peak, math.Abs(y0), math.Abs(y1), math.Abs(y2), math.Abs(y3))
		return
	}
	for p := 0; p < t.factor; p++ {
		c := &t.phases[p]
		var y float64
		for k := 0; k < tpTaps; k++ {
			y += c[k] * w[k]
		}
		t.peak = max(t.peak, math.Abs(y))
	}
}

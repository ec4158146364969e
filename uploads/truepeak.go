package uploads

import "math"

// truePeak estimates the inter-sample peak of one channel by oversampling
// (BS.1770-4 Annex 2): 4x below 96 kHz, 2x below 192 kHz, none above, with a
// windowed-sinc polyphase interpolator.
type truePeak struct {
	factor int
	phases [][]float64 // phases[p][k]: tap k of phase p
	hist   []float64   // circular history, newest at pos
	pos    int
	peak   float64
}

const tpTapsPerPhase = 16

func tpFilter(factor int) [][]float64 {
	n := factor * tpTapsPerPhase
	h := make([]float64, n)
	c := float64(n-1) / 2
	// Kaiser window, beta 8: > 80 dB stopband, enough for a peak meter.
	const beta = 8.0
	i0b := besselI0(beta)
	for i := range h {
		t := (float64(i) - c) / float64(factor)
		s := 1.0
		if t != 0 {
			s = math.Sin(math.Pi*t) / (math.Pi * t)
		}
		r := (float64(i) - c) / c
		w := besselI0(beta*math.Sqrt(max(0, 1-r*r))) / i0b
		h[i] = s * w
	}
	ph := make([][]float64, factor)
	for p := range factor {
		for k := 0; k < tpTapsPerPhase; k++ {
			ph[p] = append(ph[p], h[k*factor+p])
		}
	}
	return ph
}

func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
	}
	return sum
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
		t.hist = make([]float64, 2*tpTapsPerPhase) // doubled so a window is one contiguous slice
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
	// Write x twice so hist[pos+1 : pos+1+taps] always holds the last
	// taps samples in order, oldest first.
	t.pos = (t.pos + 1) % tpTapsPerPhase
	t.hist[t.pos] = x
	t.hist[t.pos+tpTapsPerPhase] = x
	w := t.hist[t.pos+1 : t.pos+1+tpTapsPerPhase]
	for _, ph := range t.phases {
		var y float64
		for k, c := range ph {
			y += c * w[tpTapsPerPhase-1-k]
		}
		if y < 0 {
			y = -y
		}
		if y > t.peak {
			t.peak = y
		}
	}
}

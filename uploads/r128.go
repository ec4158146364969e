package uploads

import (
	"math"
)

// meter measures integrated loudness (EBU R128 / ITU-R BS.1770-4) and true
// peak of interleaved float samples, streaming, at any sample rate.
//
// K-weighting is the two-stage filter of BS.1770 with coefficients derived
// for the actual rate (the standard only tabulates 48 kHz); gating blocks are
// 400 ms long with 75 % overlap, so energy is summed per 100 ms step and a
// block is four consecutive steps.
type meter struct {
	rate, channels int
	k              []kFilter // per channel
	step           int       // samples per 100 ms
	inStep         int
	stepSum        []float64  // per channel energy of the running step
	ring           [4]float64 // weighted energy of the last four steps
	nsteps         int
	blocks         []float64 // mean-square energy (channel-weighted) per 400 ms block
	tp             []truePeak
	samples        int64
}

type biquad struct {
	b0, b1, b2, a1, a2 float64
	z1, z2             float64
}

func (f *biquad) run(x float64) float64 {
	// Transposed direct form II: fewest state variables, good precision.
	y := f.b0*x + f.z1
	f.z1 = f.b1*x - f.a1*y + f.z2
	f.z2 = f.b2*x - f.a2*y
	return y
}

type kFilter struct{ shelf, hp biquad }

func newKFilter(rate float64) kFilter {
	// Pre-filter (high shelf ~+4 dB above 1.5 kHz), parameters from
	// BS.1770's 48 kHz coefficients solved back to an analogue prototype.
	f0, g, q := 1681.974450955533, 3.999843853973347, 0.7071752369554196
	k := math.Tan(math.Pi * f0 / rate)
	vh := math.Pow(10, g/20)
	vb := math.Pow(vh, 0.4996667741545416)
	a0 := 1 + k/q + k*k
	shelf := biquad{
		b0: (vh + vb*k/q + k*k) / a0,
		b1: 2 * (k*k - vh) / a0,
		b2: (vh - vb*k/q + k*k) / a0,
		a1: 2 * (k*k - 1) / a0,
		a2: (1 - k/q + k*k) / a0,
	}
	// RLB weighting: second-order high pass at ~38 Hz.
	f0, q = 38.13547087602444, 0.5003270373238773
	k = math.Tan(math.Pi * f0 / rate)
	a0 = 1 + k/q + k*k
	hp := biquad{b0: 1, b1: -2, b2: 1, a1: 2 * (k*k - 1) / a0, a2: (1 - k/q + k*k) / a0}
	return kFilter{shelf: shelf, hp: hp}
}

func newMeter(rate, channels int) *meter {
	m := &meter{rate: rate, channels: channels, step: (rate + 5) / 10,
		stepSum: make([]float64, channels)}
	for range channels {
		m.k = append(m.k, newKFilter(float64(rate)))
		m.tp = append(m.tp, newTruePeak(rate))
	}
	return m
}

// Write feeds interleaved samples (full frames only).
func (m *meter) Write(x []float32) {
	ch := m.channels
	for i := 0; i+ch <= len(x); i += ch {
		for c := 0; c < ch; c++ {
			v := float64(x[i+c])
			y := m.k[c].hp.run(m.k[c].shelf.run(v))
			m.stepSum[c] += y * y
			m.tp[c].push(v)
		}
		m.samples++
		m.inStep++
		if m.inStep == m.step {
			m.endStep()
		}
	}
}

func (m *meter) endStep() {
	var e float64
	for c := range m.stepSum {
		// Channel weights: 1.0 for left, right and centre; moh only
		// measures mono and stereo.
		e += m.stepSum[c]
		m.stepSum[c] = 0
	}
	m.inStep = 0
	m.ring[m.nsteps%4] = e
	m.nsteps++
	if m.nsteps >= 4 {
		sum := m.ring[0] + m.ring[1] + m.ring[2] + m.ring[3]
		m.blocks = append(m.blocks, sum/float64(4*m.step))
	}
}

func energyToLUFS(e float64) float64 { return -0.691 + 10*math.Log10(e) }

// Integrated returns the gated integrated loudness in LUFS, or -Inf when
// nothing passes the absolute gate (silence).
func (m *meter) Integrated() float64 {
	const absGate = -70.0
	var sum float64
	var n int
	for _, b := range m.blocks {
		if energyToLUFS(b) > absGate {
			sum += b
			n++
		}
	}
	if n == 0 {
		return math.Inf(-1)
	}
	rel := energyToLUFS(sum/float64(n)) - 10
	sum, n = 0, 0
	for _, b := range m.blocks {
		if l := energyToLUFS(b); l > absGate && l > rel {
			sum += b
			n++
		}
	}
	if n == 0 {
		return math.Inf(-1)
	}
	return energyToLUFS(sum / float64(n))
}

// TruePeak returns the true peak in dBTP (-Inf for digital silence).
func (m *meter) TruePeak() float64 {
	var p float64
	for i := range m.tp {
		p = max(p, m.tp[i].peak)
	}
	return 20 * math.Log10(p)
}

// Samples is how many frames the meter has seen.
func (m *meter) Samples() int64 { return m.samples }

package phone

import (
	"math"
	"sync"

	"github.com/mohproject/moh/internal/kaiser"
)

// The line's PCM rate and the rational step to the telephone rate:
// 8000/44100 = 80/441.
const (
	InputRate = 44100
	upL       = 80  // interpolation factor
	downM     = 441 // decimation factor
)

// Resampler design. The low-pass passes the telephone band (to 3400 Hz)
// and stops everything from 4000 Hz, the new Nyquist frequency, by at
// least 80 dB, so nothing above it folds back into the band: a 5 kHz tone
// would alias to 3 kHz, a 12 kHz one to 4 kHz. A Kaiser window with
// β for 90 dB over a 600 Hz transition needs about 420 taps at 44.1 kHz;
// 448 per phase leaves margin.
const (
	resampTaps   = 448    // taps per polyphase branch, at the input rate
	resampCutoff = 3700.0 // Hz, the middle of the 3400..4000 transition
	resampBeta   = 8.96   // Kaiser β for 90 dB stopband attenuation
)

// polyphase holds the filter once for every resampler: 80 branches of 448
// coefficients, each stored reversed so a branch is a plain dot product
// with the newest 448 input samples. Designed on first use, not at start:
// a box without a telephone output never pays its 140 KB (and the 280 KB
// window it is made from) or the 5 ms it takes.
var polyphase = sync.OnceValue(designPolyphase)

func designPolyphase() *[upL][resampTaps]float32 {
	out := new([upL][resampTaps]float32)
	n := upL * resampTaps
	centre := float64(n-1) / 2
	fc := resampCutoff / float64(InputRate*upL) // cycles per upsampled sample
	h := kaiser.Window(n, resampBeta)
	sum := 0.0
	for i := range h {
		x := float64(i) - centre
		s := 2 * fc
		if x != 0 {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		h[i] *= s
		sum += h[i]
	}
	// Unit gain at DC after zero-stuffing by L: each branch sums to ~1.
	scale := float64(upL) / sum
	for phase := range upL {
		for k := range resampTaps {
			out[phase][resampTaps-1-k] = float32(h[k*upL+phase] * scale)
		}
	}
	return out
}

// Resampler turns 44.1 kHz mono samples into 8 kHz ones, streaming: input
// may arrive in blocks of any size, and the output is the same as for one
// long block. It allocates nothing after NewResampler.
type Resampler struct {
	taps *[upL][resampTaps]float32
	buf  []float32 // history (resampTaps-1 samples) then unconsumed input
	n    int       // samples in buf
	// pos is the next output's position in units of 1/upL input samples,
	// relative to buf[0].
	pos int
}

// resampChunk bounds the input taken in one step, so buf has a fixed
// size whatever the caller writes.
const resampChunk = 4096

// NewResampler returns a resampler primed with silence.
func NewResampler() *Resampler {
	r := &Resampler{taps: polyphase(), buf: make([]float32, resampTaps-1+resampChunk)}
	r.n = resampTaps - 1
	r.pos = (resampTaps - 1) * upL // the first output uses the first input sample as its newest
	return r
}

// Process resamples in, appending the 8 kHz samples to out (which it
// returns). out needs capacity for len(in)*80/441+2 more samples to stay
// allocation-free.
func (r *Resampler) Process(in []float32, out []float32) []float32 {
	for len(in) > 0 {
		take := min(len(in), len(r.buf)-r.n)
		copy(r.buf[r.n:], in[:take])
		r.n += take
		in = in[take:]
		for {
			newest := r.pos / upL
			if newest >= r.n {
				break
			}
			c := &r.taps[r.pos%upL]
			x := r.buf[newest-(resampTaps-1) : newest+1]
			out = append(out, dot(c[:], x))
			r.pos += downM
		}
		// Keep the history the next output needs.
		first := r.pos/upL - (resampTaps - 1)
		if first > 0 {
			copy(r.buf, r.buf[first:r.n])
			r.n -= first
			r.pos -= first * upL
		}
	}
	return out
}

// dot is the branch's inner product, unrolled by four.
func dot(c, x []float32) float32 {
	x = x[:len(c)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(c); i += 4 {
		s0 += c[i] * x[i]
		s1 += c[i+1] * x[i+1]
		s2 += c[i+2] * x[i+2]
		s3 += c[i+3] * x[i+3]
	}
	for ; i < len(c); i++ {
		s0 += c[i] * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

package phone

import (
	"math"
	"sync/atomic"

	"github.com/zaf/g711"
)

// Levels on the phone line are in dBm0 (ITU-T G.711): a full-scale sine
// is +3.17 dBm0, so a sine at X dBFS (full-scale sine = 0 dBFS) is
// X + 3.17 dBm0.
const (
	FullScaleDBm0 = 3.17
	// DefaultTargetDBm0 is the active speech level telephony expects
	// (RFC 7874 §4): music levelled to it sounds as loud as a caller.
	DefaultTargetDBm0 = -19.0
	// limitPeak is the largest sample the limiter lets through: below the
	// largest value µ-law (32124) and A-law (32256) encode, so neither
	// ever clips.
	limitPeak = 32000.0
	// fullScaleRMS is the RMS of a full-scale sine, 0 dBFS.
	fullScaleRMS = 32767.0 / math.Sqrt2
)

// DBm0ToRMS is the RMS sample value (16-bit linear) of a signal at level
// dBm0.
func DBm0ToRMS(dbm0 float64) float64 {
	return fullScaleRMS * math.Pow(10, (dbm0-FullScaleDBm0)/20)
}

// RMSToDBm0 is the level in dBm0 of a signal with the given RMS.
func RMSToDBm0(rms float64) float64 {
	if rms <= 0 {
		return math.Inf(-1)
	}
	return 20*math.Log10(rms/fullScaleRMS) + FullScaleDBm0
}

// Level stage tuning. The estimate follows the music's active level over
// a few seconds (slow enough not to pump within a phrase, fast enough to
// level the next track within its first bars); frames below the gate
// (silence between tracks, a fade) do not count, so a pause is not
// boosted into hiss.
const (
	levelTau    = 3.0   // seconds
	gateDBm0    = -45.0 // frames quieter than this are not "active"
	maxGainDB   = 20.0
	minGainDB   = -30.0
	highpassHz  = 300.0
	frameSecond = float64(FrameDuration) / 1e9
)

// biquad is one second-order IIR section (direct form I), in float64 so
// the 300 Hz corner at 8 kHz stays exact.
type biquad struct {
	b0, b1, b2, a1, a2 float64
	x1, x2, y1, y2     float64
}

func (q *biquad) run(x float64) float64 {
	y := q.b0*x + q.b1*q.x1 + q.b2*q.x2 - q.a1*q.y1 - q.a2*q.y2
	q.x2, q.x1 = q.x1, x
	q.y2, q.y1 = q.y1, y
	return y
}

// highpass returns a second-order high-pass section with quality q
// (RBJ cookbook).
func highpass(fc, fs, q float64) biquad {
	w := 2 * math.Pi * fc / fs
	cw, sw := math.Cos(w), math.Sin(w)
	alpha := sw / (2 * q)
	a0 := 1 + alpha
	return biquad{
		b0: (1 + cw) / 2 / a0, b1: -(1 + cw) / a0, b2: (1 + cw) / 2 / a0,
		a1: -2 * cw / a0, a2: (1 - alpha) / a0,
	}
}

// shaper is everything after the resampler: the 300 Hz high-pass (the
// resampler's low-pass is the 3400 Hz edge), the level stage, the limiter
// and the G.711 encoders. One goroutine uses it.
type shaper struct {
	hp       [2]biquad // 4th-order Butterworth: -3 dB at 300 Hz, -0.2 dB at 441 Hz
	target   float64   // RMS the active level is brought to
	power    float64   // smoothed active power; 0 until the first active frame
	active   int       // active frames seen, up to 1/alpha
	gain     float64   // gain at the end of the last frame
	alpha    float64   // smoothing per frame
	gateRMS  float64
	limiting atomic.Uint64 // frames the limiter cut
}

func newShaper(targetDBm0 float64) *shaper {
	return &shaper{
		hp: [2]biquad{
			highpass(highpassHz, SampleRate, 0.5411961), // Butterworth Q pair for 4th order
			highpass(highpassHz, SampleRate, 1.3065630),
		},
		target:  DBm0ToRMS(targetDBm0),
		gain:    1,
		alpha:   1 - math.Exp(-frameSecond/levelTau),
		gateRMS: DBm0ToRMS(gateDBm0),
	}
}

// restart forgets the filters' state and the level reading, as at boot:
// after an idle period the replayed music is levelled on its own, not
// from the estimate of what played before it.
func (s *shaper) restart() {
	for i := range s.hp {
		s.hp[i].x1, s.hp[i].x2, s.hp[i].y1, s.hp[i].y2 = 0, 0, 0, 0
	}
	s.power, s.active, s.gain = 0, 0, 1
}

// frame shapes 160 samples of 8 kHz music into f's PCM.
func (s *shaper) frame(in *[FrameSamples]float32, f *Frame) {
	var buf [FrameSamples]float64
	var pow, peak float64
	for i, x := range in {
		y := s.hp[1].run(s.hp[0].run(float64(x)))
		buf[i] = y
		pow += y * y
		peak = max(peak, math.Abs(y))
	}
	pow /= FrameSamples
	first := s.power == 0 // no music levelled yet: nothing to ramp from
	if pow >= s.gateRMS*s.gateRMS {
		// A running mean over the first frames, then the exponential
		// average: the level is right within a second of the music
		// starting, and follows it slowly after.
		a := s.alpha
		if float64(s.active) < 1/s.alpha {
			s.active++
			a = max(a, 1/float64(s.active))
		}
		s.power += a * (pow - s.power)
	}
	want := s.gain
	if s.power > 0 {
		want = s.target / math.Sqrt(s.power)
		want = min(max(want, dbToGain(minGainDB)), dbToGain(maxGainDB))
		if first {
			// The first music frame starts at its gain: a ramp from
			// unity would put a level step at the head of the stream.
			s.gain = want
		}
	}
	// The limiter: this frame's peak must stay under limitPeak. If even
	// the gain it starts with would clip, it drops at once rather than
	// ramping (a step only under overload); otherwise the gain ramps
	// across the frame, so level changes never click.
	start, end := s.gain, want
	if peak > 0 {
		lim := limitPeak / peak
		if end > lim {
			end = lim
			s.limiting.Add(1)
		}
		if start > lim {
			start = end
		}
	}
	step := (end - start) / FrameSamples
	g := start
	for i, y := range buf {
		g += step
		v := y * g
		v = min(max(v, -limitPeak), limitPeak)
		f.PCM[i] = int16(math.Round(v))
	}
	s.gain = end
	encode(f)
}

// encode fills f's G.711 payloads from its PCM.
func encode(f *Frame) {
	for i, v := range f.PCM {
		f.ULaw[i] = g711.EncodeUlawFrame(v)
		f.ALaw[i] = g711.EncodeAlawFrame(v)
	}
}

func dbToGain(db float64) float64 { return math.Pow(10, db/20) }

package imagetest

import (
	"errors"
	"fmt"
	"math"
	"math/cmplx"
)

// loopResult says how faithfully a recording follows a reference track
// played on an endless loop.
type loopResult struct {
	AudioStart   int     // first audible frame of the recording
	Frames       int     // frames compared with the reference
	Seams        int     // loop points crossed inside the compared frames
	CleanSeams   int     // of those, crossed with seamMarginMs of matching sound on both sides
	SeamBreaks   int     // breaks within seamBreakMs of a loop point
	Breaks       []int   // frames where the recording stopped following the loop
	BreaksAt     []int   // where in the reference each break came (frame)
	MaxSilenceMs float64 // longest digital silence where the reference has sound
	WorstDB      float64 // worst 10 ms window: residual relative to the signal
	Gain         float64 // recording level relative to the reference
}

const (
	audibleLevel = 1e-3          // about 33 LSB of 16-bit audio
	silentLevel  = 2.5 / 32768.0 // within two LSB of zero
	breakRatio   = 0.01          // a window whose residual exceeds -20 dB breaks the loop
	seamMarginMs = 250           // context a loop point needs on both sides to count as clean
	seamBreakMs  = 50            // a break this close to a loop point is a break of the loop point
	minMatch     = 0.95          // normalised correlation that counts as "found in the reference"
)

// mono mixes interleaved 16-bit frames to float samples in [-1, 1).
func mono(s []int16, channels int) []float64 {
	out := make([]float64, len(s)/channels)
	for i := range out {
		var sum float64
		for c := 0; c < channels; c++ {
			sum += float64(s[i*channels+c])
		}
		out[i] = sum / float64(channels) / 32768
	}
	return out
}

// checkLoop compares a recording with ref played on a loop: it aligns the
// recording with the reference by cross-correlation, then walks it in 10 ms
// windows, each of which must match the reference at the expected position
// (a gap, a click or a dropped or repeated stretch at the loop point shows
// up as a window that no longer does). A break is re-aligned so that every
// break is counted.
func checkLoop(rec, ref []float64, rate int) (loopResult, error) {
	var res loopResult
	n := len(ref)
	win := rate / 2
	step := rate / 100
	if n < step || win > n {
		return res, fmt.Errorf("reference of %d frames is too short", n)
	}
	res.AudioStart = -1
	for i, v := range rec {
		if math.Abs(v) > audibleLevel {
			res.AudioStart = i
			break
		}
	}
	if res.AudioStart < 0 {
		return res, errors.New("recording is silent")
	}
	res.WorstDB = math.Inf(-1)
	al := newAligner(ref, win)
	a := res.AudioStart + rate/4
	for a+win <= len(rec) {
		pos, gain, score := al.align(rec[a : a+win])
		if score < minMatch {
			// Silence or a glitch after a break: look further on.
			a += rate / 20
			continue
		}
		if res.Gain == 0 {
			res.Gain = gain
		}
		s := a
		silent, runPeak := 0, 0.0
		for ; s+step <= len(rec); s += step {
			var e, sig, winSilence float64
			for j := s; j < s+step; j++ {
				r := res.Gain * ref[(pos+j-a)%n]
				d := rec[j] - r
				e += d * d
				sig += r*r + rec[j]*rec[j]
				// A run of digital silence counts only if the reference
				// had sound somewhere inside it.
				if math.Abs(rec[j]) <= silentLevel {
					silent++
					runPeak = math.Max(runPeak, math.Abs(r))
					if runPeak > 10*audibleLevel {
						winSilence = math.Max(winSilence, float64(silent)*1000/float64(rate))
					}
				} else {
					silent, runPeak = 0, 0
				}
			}
			floor := float64(step) * audibleLevel * audibleLevel
			ratio := e / math.Max(sig, floor)
			if db := 10 * math.Log10(ratio+1e-12); db > res.WorstDB {
				res.WorstDB = db
			}
			if ratio > breakRatio {
				break // the silence of a break is the break, not a silence inside the loop
			}
			res.MaxSilenceMs = math.Max(res.MaxSilenceMs, winSilence)
		}
		res.Frames += s - a
		res.Seams += (pos+s-a)/n - pos/n
		margin := seamMarginMs * rate / 1000
		for k := pos/n + 1; k*n <= pos+s-a; k++ {
			if x := a + k*n - pos; x-a >= margin && s-x >= margin {
				res.CleanSeams++
			}
		}
		if s+step > len(rec) {
			break
		}
		res.Breaks = append(res.Breaks, s)
		at := (pos + s - a) % n
		res.BreaksAt = append(res.BreaksAt, at)
		if d := min(at, n-at); d <= seamBreakMs*rate/1000 {
			res.SeamBreaks++
		}
		a = s + rate/10 // re-align past the break
	}
	return res, nil
}

// aligner finds where in the (circular) reference a window of the
// recording starts, by FFT cross-correlation; the reference's transform and
// window energies are computed once.
type aligner struct {
	n, w, size int
	fr         []complex128
	pre        []float64 // prefix sums of the reference's energy
}

func newAligner(ref []float64, w int) *aligner {
	n := len(ref)
	al := &aligner{n: n, w: w, size: 1}
	for al.size < n+w {
		al.size <<= 1
	}
	al.fr = make([]complex128, al.size)
	al.pre = make([]float64, n+w+1)
	for i := 0; i < n+w; i++ {
		v := ref[i%n]
		al.fr[i] = complex(v, 0)
		al.pre[i+1] = al.pre[i] + v*v
	}
	fft(al.fr, false)
	return al
}

// align returns the reference position where x starts, the level of x
// relative to the reference, and how well it matches (normalised
// correlation, 1 is perfect).
func (al *aligner) align(x []float64) (pos int, gain, score float64) {
	fx := make([]complex128, al.size)
	var xe float64
	for i, v := range x {
		fx[i] = complex(v, 0)
		xe += v * v
	}
	if xe == 0 {
		return 0, 0, 0
	}
	fft(fx, false)
	for i := range fx {
		fx[i] = al.fr[i] * cmplx.Conj(fx[i])
	}
	fft(fx, true)
	best := math.Inf(-1)
	for k := 0; k < al.n; k++ {
		en := al.pre[k+al.w] - al.pre[k]
		if en <= 0 {
			continue
		}
		c := real(fx[k]) / float64(al.size)
		if sc := c / math.Sqrt(en); sc > best {
			best, pos, gain = sc, k, c/en
		}
	}
	return pos, gain, best / math.Sqrt(xe)
}

// fft is an in-place iterative radix-2 FFT; len(a) must be a power of two.
func fft(a []complex128, inverse bool) {
	n := len(a)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		ang := -2 * math.Pi / float64(size)
		if inverse {
			ang = -ang
		}
		wn := cmplx.Rect(1, ang)
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := 0; k < size/2; k++ {
				u, v := a[start+k], a[start+k+size/2]*w
				a[start+k], a[start+k+size/2] = u+v, u-v
				w *= wn
			}
		}
	}
}

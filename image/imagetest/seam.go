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
	Breaks       []int   // frames where the recording stopped following the loop
	MaxSilenceMs float64 // longest digital silence where the reference has sound
	WorstDB      float64 // worst 10 ms window: residual relative to the signal
	Gain         float64 // recording level relative to the reference
}

const (
	audibleLevel = 1e-3          // about 33 LSB of 16-bit audio
	silentLevel  = 2.5 / 32768.0 // within two LSB of zero
	breakRatio   = 0.01          // a window whose residual exceeds -20 dB breaks the loop
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
	a := res.AudioStart + rate/4
	for a+win <= len(rec) {
		pos, gain := align(rec[a:a+win], ref)
		if res.Gain == 0 {
			res.Gain = gain
		}
		s := a
		silent := 0
		for ; s+step <= len(rec); s += step {
			var e, sig, refPeak float64
			for j := s; j < s+step; j++ {
				r := res.Gain * ref[(pos+j-a)%n]
				d := rec[j] - r
				e += d * d
				sig += r*r + rec[j]*rec[j]
				refPeak = math.Max(refPeak, math.Abs(r))
				if math.Abs(rec[j]) <= silentLevel && refPeak > 10*audibleLevel {
					silent++
					res.MaxSilenceMs = math.Max(res.MaxSilenceMs, float64(silent)*1000/float64(rate))
				} else if math.Abs(rec[j]) > silentLevel {
					silent = 0
				}
			}
			floor := float64(step) * audibleLevel * audibleLevel
			ratio := e / math.Max(sig, floor)
			if db := 10 * math.Log10(ratio+1e-12); db > res.WorstDB {
				res.WorstDB = db
			}
			if ratio > breakRatio {
				break
			}
		}
		res.Frames += s - a
		res.Seams += (pos+s-a)/n - pos/n
		if s+step > len(rec) {
			break
		}
		res.Breaks = append(res.Breaks, s)
		a = s + rate/10 // re-align past the break
	}
	return res, nil
}

// align finds where in the (circular) reference x starts and the level of x
// relative to it, by FFT cross-correlation normalised by the reference's
// energy under the window.
func align(x, ref []float64) (pos int, gain float64) {
	n, w := len(ref), len(x)
	size := 1
	for size < n+w {
		size <<= 1
	}
	fr := make([]complex128, size)
	fx := make([]complex128, size)
	for i := 0; i < n+w; i++ {
		fr[i] = complex(ref[i%n], 0)
	}
	for i, v := range x {
		fx[i] = complex(v, 0)
	}
	fft(fr, false)
	fft(fx, false)
	for i := range fr {
		fr[i] *= cmplx.Conj(fx[i])
	}
	fft(fr, true)
	// Energy of each reference window, from prefix sums.
	pre := make([]float64, n+w+1)
	for i := 0; i < n+w; i++ {
		v := ref[i%n]
		pre[i+1] = pre[i] + v*v
	}
	best := math.Inf(-1)
	for k := 0; k < n; k++ {
		en := pre[k+w] - pre[k]
		if en <= 0 {
			continue
		}
		c := real(fr[k]) / float64(size)
		if score := c / math.Sqrt(en); score > best {
			best, pos, gain = score, k, c/en
		}
	}
	return pos, gain
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

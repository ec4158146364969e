// Package kaiser is the window of moh's windowed-sinc filters: the
// telephone resampler (internal/phone) and the true-peak meter (uploads).
// One implementation, so a correction to the window or its Bessel series
// reaches both.
package kaiser

import "math"

// Window returns the n-point Kaiser window of shape beta:
// w[i] = I0(beta·√(1−r²)) / I0(beta), with r running from −1 to 1.
// A larger beta trades a wider main lobe for lower side lobes (beta 7 is
// about 70 dB of stopband, 8.96 about 90 dB).
func Window(n int, beta float64) []float64 {
	w := make([]float64, n)
	if n == 1 {
		w[0] = 1
		return w
	}
	i0b := I0(beta)
	// The second half mirrors the first, so the window (and the filter's
	// phase) is symmetric to the bit rather than to rounding.
	for i := range (n + 1) / 2 {
		r := 2*float64(i)/float64(n-1) - 1
		w[i] = I0(beta*math.Sqrt(max(0, 1-r*r))) / i0b
		w[n-1-i] = w[i]
	}
	return w
}

// I0 is the modified Bessel function of the first kind, order 0, summed
// as its power series until a term no longer changes the float64 sum.
func I0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 60; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}

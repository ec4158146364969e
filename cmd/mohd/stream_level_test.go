package main

import (
	"math"
	"testing"
)

// TestRMSDBm0ReadsASineAtItsLevel checks the meter the stream tests read
// the telephone level with. By G.711's definition a full-scale sine (peak
// 32767) is +3.17 dBm0, so a sine at -19 dBm0 has a peak of
// 32767·10^((-19-3.17)/20); the meter must read it as -19, not as the
// -22 an RMS taken against the peak instead of the sine's RMS gives.
func TestRMSDBm0ReadsASineAtItsLevel(t *testing.T) {
	for _, want := range []float64{-19, -6, -40} {
		peak := 32767 * math.Pow(10, (want-3.17)/20)
		x := make([]float64, 8000)
		for i := range x {
			x[i] = peak * math.Sin(2*math.Pi*441*float64(i)/8000)
		}
		if got := rmsDBm0(x); math.Abs(got-want) > 0.05 {
			t.Errorf("a 441 Hz sine at %.1f dBm0 reads %.2f dBm0", want, got)
		}
	}
}

package kaiser

import (
	"math"
	"testing"
)

// Reference values of I0 (to 17 digits, from an arbitrary-precision series) and the
// window's defining properties: symmetric to the bit, 1 in the middle, I0(0)/I0(β)
// at the ends.
func TestWindow(t *testing.T) {
	for _, tc := range []struct{ x, want float64 }{
		{0, 1},
		{1, 1.2660658777520082},
		{2, 2.2795853023360673},
		{7, 168.59390851028960},
		{8.96, 1053.1251224911710},
	} {
		if got := I0(tc.x); math.Abs(got-tc.want) > 1e-6*tc.want {
			t.Errorf("I0(%g) = %.12g, want %.12g", tc.x, got, tc.want)
		}
	}
	for _, n := range []int{1, 2, 48, 449} {
		w := Window(n, 8.96)
		if len(w) != n {
			t.Fatalf("Window(%d): %d points", n, len(w))
		}
		for i := range w {
			if w[i] != w[n-1-i] {
				t.Fatalf("Window(%d) not symmetric at %d: %g vs %g", n, i, w[i], w[n-1-i])
			}
		}
		if n%2 == 1 && math.Abs(w[n/2]-1) > 1e-15 {
			t.Errorf("Window(%d) middle = %g, want 1", n, w[n/2])
		}
		if n > 1 && math.Abs(w[0]-1/I0(8.96)) > 1e-15 {
			t.Errorf("Window(%d) end = %g, want 1/I0(β)", n, w[0])
		}
	}
}

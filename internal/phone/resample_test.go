package phone

import (
	"math"
	"testing"
)

// sine44 is n samples of a 44.1 kHz sine of amplitude amp.
func sine44(hz, amp float64, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(amp * math.Sin(2*math.Pi*hz*float64(i)/InputRate))
	}
	return out
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// resampleAll runs in through a fresh resampler in blocks of block
// samples and drops the filter's start-up.
func resampleAll(in []float32, block int) []float32 {
	r := NewResampler()
	out := make([]float32, 0, len(in)*80/441+16)
	for len(in) > 0 {
		n := min(block, len(in))
		out = r.Process(in[:n], out)
		in = in[n:]
	}
	return out[200:] // 25 ms: past the filter's delay
}

func TestResamplerPassband(t *testing.T) {
	for _, hz := range []float64{441, 1000, 3000, 3400} {
		in := sine44(hz, 16384, InputRate*2)
		out := resampleAll(in, 2205)
		got := 20 * math.Log10(rms(out)/rms(in))
		t.Logf("%.0f Hz: %.3f dB", hz, got)
		if math.Abs(got) > 0.5 {
			t.Errorf("%.0f Hz passes at %.3f dB, want within 0.5 dB", hz, got)
		}
	}
}

func TestResamplerStopband(t *testing.T) {
	// Anything at or above 4 kHz would fold back into the band: a 5 kHz
	// tone to 3 kHz, 12 kHz to 4 kHz.
	for _, hz := range []float64{4000, 4100, 5000, 8000, 12000, 20000} {
		in := sine44(hz, 16384, InputRate*2)
		out := resampleAll(in, 1000)
		got := 20 * math.Log10(rms(out)/rms(in))
		t.Logf("%.0f Hz: %.1f dB", hz, got)
		if got > -80 {
			t.Errorf("%.0f Hz comes out at %.1f dB, want below -80 dB", hz, got)
		}
	}
}

// The output must not depend on how the input is split into blocks: the
// line-out writes in blocks of any size.
func TestResamplerBlockInvariant(t *testing.T) {
	in := sine44(441, 10000, 30000)
	a := resampleAll(in, 30000)
	b := resampleAll(in, 7)
	if len(a) != len(b) {
		t.Fatalf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("sample %d: %v vs %v", i, a[i], b[i])
		}
	}
	// 30000 input samples make 30000·80/441 outputs, give or take one.
	if want := 30000*80/441 - 200; len(a) < want-1 || len(a) > want+1 {
		t.Fatalf("got %d samples, want about %d", len(a), want)
	}
}

func BenchmarkResampler20ms(b *testing.B) {
	r := NewResampler()
	in := sine44(441, 10000, 882) // 20 ms at 44.1 kHz
	out := make([]float32, 0, 200)
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(in, out[:0])
	}
}

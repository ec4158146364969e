package player

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkBlockLevelGain is what the direct backend does to every 100 ms
// block besides decoding: the source level, the volume, the output level.
func BenchmarkBlockLevelGain(b *testing.B) {
	block := make([]byte, defaultBlockFrames*BytesPerFrame)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+2 <= len(block); i += 2 {
		binary.LittleEndian.PutUint16(block[i:], uint16(int16(r.IntN(20000)-10000)))
	}
	orig := append([]byte(nil), block...)
	g := NewGain(80)
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	for b.Loop() {
		copy(block, orig)
		_ = LevelDBFS(block)
		g.Apply(block)
		_ = LevelDBFS(block)
	}
}

// The steady-volume loop must give the very samples of the general one,
// saturate16(math.Round(s*gain)): every int16 sample at every volume's
// gain and at random gains in (0, 1).
func TestScaleSteadyIsRoundHalfAway(t *testing.T) {
	gains := []float64{0.5, 0.49999999999999994, 0.9999999999999999, 1e-9}
	for v := 1; v < 100; v++ {
		gains = append(gains, VolumeGain(v))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		gains = append(gains, r.Float64())
	}
	pcm := make([]byte, 2*65536)
	for _, g := range gains {
		if g <= 0 || g >= 1 {
			continue
		}
		for s := range 65536 {
			binary.LittleEndian.PutUint16(pcm[2*s:], uint16(s))
		}
		scaleSteady(pcm, g)
		for s := range 65536 {
			in := float64(int16(uint16(s)))
			want := saturate16(math.Round(in * g))
			if got := int16(binary.LittleEndian.Uint16(pcm[2*s:])); got != want {
				t.Fatalf("gain %v, sample %v: %d, want %d", g, in, got, want)
			}
		}
	}
}

// LevelDBFS sums squares as integers; the float sum it replaced gave the
// same level on every block.
func TestLevelDBFSIntegerSum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 40 {
		pcm := make([]byte, 2*(n*37+1))
		for i := 0; i+2 <= len(pcm); i += 2 {
			binary.LittleEndian.PutUint16(pcm[i:], uint16(r.IntN(65536)))
		}
		var sum float64
		for i := 0; i+2 <= len(pcm); i += 2 {
			s := float64(int16(binary.LittleEndian.Uint16(pcm[i:])))
			sum += s * s
		}
		want := toDBFS(math.Sqrt(sum / float64(len(pcm)/2)))
		if got := LevelDBFS(pcm); got != want {
			t.Errorf("%d samples: %v dBFS, want %v", len(pcm)/2, got, want)
		}
	}
}

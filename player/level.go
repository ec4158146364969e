package player

import (
	"encoding/binary"
	"math"
)

// SilenceDBFS is the level reported for digital silence (all zeros); any
// non-zero signal reads higher (one LSB of RMS is about -90 dBFS).
const SilenceDBFS = -120.0

// LevelDBFS is the RMS level of s16le PCM over the whole block, both
// channels together, in dB relative to full scale (a full-scale square
// wave reads 0 dBFS, a full-scale sine -3.01 dBFS). An empty or all-zero
// block reads SilenceDBFS.
func LevelDBFS(pcm []byte) float64 {
	n := len(pcm) / 2
	if n == 0 {
		return SilenceDBFS
	}
	// Squares of int16 samples summed as integers, four samples a load:
	// exact, so the same as a float sum for any block (below 2^53), and
	// a third of the time (BenchmarkBlockLevelGain).
	var sum int64
	i := 0
	for ; i+8 <= len(pcm); i += 8 {
		v := binary.LittleEndian.Uint64(pcm[i:])
		a, b := int64(int16(v)), int64(int16(v>>16))
		c, d := int64(int16(v>>32)), int64(int16(v>>48))
		sum += a*a + b*b + c*c + d*d
	}
	for ; i+2 <= len(pcm); i += 2 {
		s := int64(int16(binary.LittleEndian.Uint16(pcm[i:])))
		sum += s * s
	}
	if sum == 0 {
		return SilenceDBFS
	}
	return toDBFS(math.Sqrt(float64(sum) / float64(n)))
}

// PeakDBFS is the largest absolute sample of s16le PCM in dBFS (-32768
// reads 0 dBFS); an empty or all-zero block reads SilenceDBFS.
func PeakDBFS(pcm []byte) float64 {
	peak := 0
	for i := 0; i+2 <= len(pcm); i += 2 {
		s := int(int16(binary.LittleEndian.Uint16(pcm[i:])))
		peak = max(peak, s, -s)
	}
	if peak == 0 {
		return SilenceDBFS
	}
	return toDBFS(float64(peak))
}

func toDBFS(amplitude float64) float64 {
	return max(20*math.Log10(amplitude/32768), SilenceDBFS)
}

package player

import (
	"encoding/binary"
	"math"
	"testing"
)

// levelTestSine returns frames of s16le stereo: a sine of freq Hz and peak
// amp on the channels asked for, zero on the others.
func levelTestSine(freq, amp float64, frames int, left, right bool) []byte {
	pcm := make([]byte, frames*BytesPerFrame)
	for i := range frames {
		v := int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/SampleRate)))
		if left {
			binary.LittleEndian.PutUint16(pcm[i*4:], uint16(v))
		}
		if right {
			binary.LittleEndian.PutUint16(pcm[i*4+2:], uint16(v))
		}
	}
	return pcm
}

// levelTestDC returns frames of a constant sample on both channels.
func levelTestDC(v int16, frames int) []byte {
	pcm := make([]byte, frames*BytesPerFrame)
	for i := 0; i < len(pcm); i += 2 {
		binary.LittleEndian.PutUint16(pcm[i:], uint16(v))
	}
	return pcm
}

func TestLevelDBFS(t *testing.T) {
	// 441 Hz has a period of exactly 100 samples: 1 s holds whole periods,
	// so RMS = amp/√2 exactly (up to rounding to integers).
	for _, tc := range []struct {
		name string
		pcm  []byte
		want float64
	}{
		{"full-scale sine", levelTestSine(441, 32767, SampleRate, true, true), 20 * math.Log10(32767/math.Sqrt2/32768)},
		{"half-scale sine", levelTestSine(441, 16384, SampleRate, true, true), -9.031},
		{"-40 dBFS peak sine", levelTestSine(441, 327.68, SampleRate, true, true), -43.01},
		{"sine on the left only", levelTestSine(441, 16384, SampleRate, true, false), -12.041},
		{"1 kHz sine, 0.1 s", levelTestSine(1000, 10000, SampleRate/10, true, true), 20 * math.Log10(10000/math.Sqrt2/32768)},
		{"full-scale negative DC", levelTestDC(-32768, 100), 0},
		{"one LSB DC", levelTestDC(1, 100), -90.309},
		{"digital silence", make([]byte, 17640), -120},
		{"empty", nil, -120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LevelDBFS(tc.pcm); math.Abs(got-tc.want) > 0.1 {
				t.Fatalf("LevelDBFS = %.3f, want %.3f ± 0.1", got, tc.want)
			}
		})
	}
}

func TestLevelPeakDBFS(t *testing.T) {
	for _, tc := range []struct {
		name string
		pcm  []byte
		want float64
	}{
		{"half-scale sine", levelTestSine(441, 16384, SampleRate/10, true, true), -6.021},
		{"right channel only", levelTestSine(441, 3277, SampleRate/10, false, true), -20.0},
		{"most negative sample", levelTestDC(-32768, 1), 0},
		{"most positive sample", levelTestDC(32767, 1), -0.000265},
		{"silence", make([]byte, 400), -120},
		{"odd trailing byte ignored", []byte{0, 0, 0xff}, -120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PeakDBFS(tc.pcm); math.Abs(got-tc.want) > 0.01 {
				t.Fatalf("PeakDBFS = %.4f, want %.4f", got, tc.want)
			}
		})
	}
}

package imagetest

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// wavTail follows the WAV file QEMU is still writing, frame by frame, and
// notes the wall-clock time the first audible frame showed up.
type wavTail struct {
	path       string
	f          *os.File
	hdr        wavFormat
	off        int64
	frames     int // whole frames read so far
	FirstAudio time.Time
	// FirstAudioFrame is the frame index of the first audible frame.
	FirstAudioFrame int
	partial         []byte
	recent          []float64 // mono, last few seconds
}

func (w *wavTail) Close() {
	if w.f != nil {
		w.f.Close()
	}
}

// poll reads what QEMU has appended since the last call.
func (w *wavTail) poll() error {
	if w.f == nil {
		f, err := os.Open(w.path)
		if err != nil {
			return nil // QEMU has not made it yet
		}
		w.f = f
	}
	if w.hdr.DataOffset == 0 {
		b := make([]byte, 4096)
		n, _ := w.f.ReadAt(b, 0)
		h, err := parseWAVHeader(b[:n])
		if err != nil {
			if n >= 512 {
				return fmt.Errorf("%s: %w", w.path, err)
			}
			return nil
		}
		w.hdr, w.off = h, h.DataOffset
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := w.f.ReadAt(buf, w.off)
		if n > 0 {
			w.off += int64(n)
			w.consume(buf[:n])
		}
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", w.path, err)
		}
	}
}

func (w *wavTail) consume(b []byte) {
	b = append(w.partial, b...)
	fb := 2 * w.hdr.Channels
	whole := len(b) / fb * fb
	for i := 0; i < whole; i += fb {
		var sum float64
		for c := 0; c < w.hdr.Channels; c++ {
			sum += float64(int16(binary.LittleEndian.Uint16(b[i+2*c:])))
		}
		v := sum / float64(w.hdr.Channels) / 32768
		if w.FirstAudio.IsZero() && math.Abs(v) > audibleLevel {
			w.FirstAudio = time.Now()
			w.FirstAudioFrame = w.frames
		}
		w.recent = append(w.recent, v)
		w.frames++
	}
	if keep := 10 * w.hdr.Rate; len(w.recent) > 2*keep {
		w.recent = append([]float64(nil), w.recent[len(w.recent)-keep:]...)
	}
	w.partial = append([]byte(nil), b[whole:]...)
}

// lastRMS is the level of the last d of audio, and whether that much was
// recorded.
func (w *wavTail) lastRMS(d time.Duration) (float64, bool) {
	n := int(d.Seconds() * float64(w.hdr.Rate))
	if w.hdr.Rate == 0 || len(w.recent) < n || n == 0 {
		return 0, false
	}
	var e float64
	for _, v := range w.recent[len(w.recent)-n:] {
		e += v * v
	}
	return math.Sqrt(e / float64(n)), true
}

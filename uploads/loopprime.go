package uploads

// This file primes the encoder for the loop. Music on hold repeats one or
// a few tracks for ever, and lame, left alone, starts its first frame from
// silence and flushes its last frame into zeros: the first and last frames
// then carry a pre-echo transient that no gapless trim removes, a click at
// every seam (measured on a looped sine: 2.6k-4.9k LSB peak error at the
// seam against ~0.4k inside the track). So the encoder is given the
// track's own neighbours in the loop, its last samples before its start
// and its first samples after its end, and the LAME tag then hides them:
// encoder delay and padding grow by the primed lengths, so every gapless
// decoder (mpg123, MPD, the direct player) still returns exactly the
// track.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/mohproject/moh/internal/mp3"
)

// defaultPrime is how many 44.1 kHz frames of loop context go on each
// side: one frame. Measured on looped sines at 441, 2205 and 4410 Hz
// (seam peak error in LSB, interior ≈ 7-13): none 35/158/194, 576
// 24/8/19, 1152 8/7/7, 2304 10/8/5. 576 is not enough (lame's MDCT window
// and look-ahead reach further); past 1152 nothing improves and the tag's
// 12-bit fields have less room.
const defaultPrime = 1152

// maxTagField is the largest value of the LAME tag's 12-bit delay and
// padding fields.
const maxTagField = 4095

// lamePadMax bounds the padding lame writes (measured over every length
// modulo a frame: 577..1727). Should a lame pad more, the patch fails
// and the rendition is made without priming.
const lamePadMax = 1728

// loopPrime is the loop context for one track, at the original rate, as
// interleaved stereo float32 in the decoder's output format.
type loopPrime struct {
	out  int       // frames of context at 44.1 kHz on each side
	tail []float32 // the track's last frames, fed before its start
	head []float32 // the track's first frames, fed after its end
}

// primeFrames returns how many frames of context to take at the original
// rate (in) so that they resample to a whole number of 44.1 kHz frames
// (out) near target: the resampler then puts the track's first sample
// exactly on an output sample, and the tag can hide the context exactly.
// It returns 0, 0 when no such length fits the tag.
func primeFrames(rate, target int) (in, out int) {
	if rate <= 0 || target <= 0 {
		return 0, 0
	}
	g := gcd(rate, 44100)
	unitIn, unitOut := rate/g, 44100/g
	k := max(1, int(math.Round(float64(target)/float64(unitOut))))
	// lame 3.100 writes a delay of 576 and a padding below 1728 (576 plus
	// less than a frame); the sums must stay within 12 bits.
	for k > 0 && k*unitOut > maxTagField-lamePadMax {
		k--
	}
	return k * unitIn, k * unitOut
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// primeCapture keeps the first and last n frames of a decoded stream.
type primeCapture struct {
	n    int
	head []float32
	ring []float32 // last n frames, oldest at pos
	pos  int
	full bool
}

func newPrimeCapture(n int) *primeCapture {
	return &primeCapture{n: n, head: make([]float32, 0, 2*n), ring: make([]float32, 2*n)}
}

// Write takes interleaved stereo frames.
func (c *primeCapture) Write(x []float32) {
	if c.n == 0 {
		return
	}
	if h := 2*c.n - len(c.head); h > 0 {
		c.head = append(c.head, x[:min(h, len(x))]...)
	}
	if len(x) >= len(c.ring) {
		copy(c.ring, x[len(x)-len(c.ring):])
		c.pos, c.full = 0, true
		return
	}
	for len(x) > 0 {
		k := copy(c.ring[c.pos:], x)
		x = x[k:]
		c.pos += k
		if c.pos == len(c.ring) {
			c.pos, c.full = 0, true
		}
	}
}

// prime returns the context for a track of frames frames, or nil when the
// track is too short to lend it (shorter than both sides together, which
// moh's minimum length rules out at every rate it accepts).
func (c *primeCapture) prime(frames int64, out int) *loopPrime {
	if c.n == 0 || !c.full || frames < int64(2*c.n) || len(c.head) < 2*c.n {
		return nil
	}
	tail := append(append(make([]float32, 0, len(c.ring)), c.ring[c.pos:]...), c.ring[:c.pos]...)
	return &loopPrime{out: out, tail: tail, head: c.head}
}

func float32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// errTagFull: the primed lengths do not fit the tag's 12-bit fields.
var errTagFull = errors.New("lame tag delay or padding would exceed 4095")

// lameTag locates the LAME extension of an MP3's Xing/Info frame.
type lameTag struct {
	frame []byte // the info frame's first bytes, up to the tag CRC
	ext   int    // offset of the LAME extension in frame
	off   int64  // file offset of the frame
}

// readLAMETag finds the LAME tag in the rendition lame just wrote: an
// MPEG-1 Layer III Xing/Info frame at the start (lame writes no ID3 tag
// with moh's options) whose own CRC checks out.
func readLAMETag(f io.ReaderAt) (lameTag, error) {
	buf := make([]byte, 4+32+8+4+4+100+4+mp3.LAMEExtSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return lameTag{}, fmt.Errorf("read info frame: %w", err)
	}
	h, err := mp3.ParseFrameHeader(buf)
	if err != nil || h.Version != mp3.MPEG1 || h.Layer != 3 {
		return lameTag{}, errors.New("rendition does not start with an MPEG-1 Layer III frame")
	}
	tag := mp3.ParseTag(h, buf)
	if tag.Kind != "Xing" && tag.Kind != "Info" {
		return lameTag{}, errors.New("rendition has no Xing/Info frame")
	}
	ext := tag.LAMEOffset
	if ext == 0 || !strings.HasPrefix(tag.Encoder, "LAME") || ext+mp3.LAMEExtSize > len(buf) {
		return lameTag{}, errors.New("rendition has no LAME tag")
	}
	crcAt := ext + mp3.LAMECRCOffset
	t := lameTag{frame: buf[:ext+mp3.LAMEExtSize], ext: ext}
	if got, want := mp3.LAMECRC(buf[:crcAt]), binary.BigEndian.Uint16(buf[crcAt:]); got != want {
		return lameTag{}, fmt.Errorf("lame tag crc is %04x, computed %04x: not a tag moh can patch", want, got)
	}
	return t, nil
}

func (t lameTag) delayPadding() (int, int) {
	return mp3.DelayPadding(t.frame[t.ext:])
}

// patchLAMETag adds before to the encoder delay and after to the padding
// in the rendition's LAME tag and rewrites the tag CRC. The frame count and
// the audio frames stay as they are: the context is audio that is there,
// now marked as not part of the track.
func patchLAMETag(path string, before, after int) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("patch lame tag: %w", err)
	}
	defer f.Close()
	t, err := readLAMETag(f)
	if err != nil {
		return fmt.Errorf("patch lame tag: %w", err)
	}
	delay, pad := t.delayPadding()
	delay += before
	pad += after
	if delay > maxTagField || pad > maxTagField {
		return fmt.Errorf("patch lame tag: %w (delay %d, padding %d)", errTagFull, delay, pad)
	}
	mp3.PutDelayPadding(t.frame[t.ext:], delay, pad)
	crcAt := t.ext + mp3.LAMECRCOffset
	binary.BigEndian.PutUint16(t.frame[crcAt:], mp3.LAMECRC(t.frame[:crcAt]))
	if _, err := f.WriteAt(t.frame, t.off); err != nil {
		return fmt.Errorf("patch lame tag: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("patch lame tag: %w", err)
	}
	return nil
}

// primeTarget is the loop context length to aim for, 0 for none.
func (l *Library) primeTarget() int {
	switch {
	case l.primeOverride < 0:
		return 0
	case l.primeOverride > 0:
		return l.primeOverride
	}
	return defaultPrime
}

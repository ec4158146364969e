package player

// This file turns go-mp3's output into exactly the samples that were
// encoded. go-mp3 is not gapless: it decodes the Xing/Info frame as one
// frame of silence and keeps the encoder delay, the synthesis filterbank's
// delay and the end padding. Looping such output puts a ~68 ms hole at
// every seam; a phone caller hears it.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	gomp3 "github.com/hajimehoshi/go-mp3"

	"github.com/mohproject/moh/internal/mp3"
)

// DecoderDelay is how many samples go-mp3's synthesis filterbank delays
// the signal, on top of the encoder delay the LAME tag states. Measured by
// cross-correlating go-mp3's output of LAME-encoded chirps and sines with
// their source PCM (TestGaplessMatchesSource): the source starts at
// 1152 (info frame) + 576 (LAME's delay) + 529. It is the same 529 that
// mpg123 and ffmpeg assume.
const DecoderDelay = 529

// readBufferSize is the read-ahead under go-mp3, which otherwise reads the
// file a few bytes at a time.
const readBufferSize = 16 << 10

// Gapless decodes one MP3 to s16le stereo PCM holding exactly the
// original samples: Read returns the first encoded sample first and stops
// after the last. It streams: memory use is a few frames, whatever the
// file's length.
type Gapless struct {
	info MP3Info
	dec  *gomp3.Decoder
	skip int64 // bytes still to drop before the first original sample
	left int64 // bytes still to deliver; -1 means until the stream ends
	pos  int64 // frames delivered
	// truncated is set when the stream ended before the length the tag
	// promised.
	truncated bool
	drop      []byte
}

// OpenGapless parses the header of the MP3 in r (size bytes) and returns
// a decoder for it. It does not check playability; see CheckPlayable.
func OpenGapless(r io.ReaderAt, size int64) (*Gapless, error) {
	info, err := mp3.ReadInfo(r, size)
	if err != nil {
		return nil, err
	}
	return NewGapless(r, size, info)
}

// NewGapless returns a decoder for the MP3 in r whose header was parsed
// into info. It starts go-mp3 at the first frame, past the ID3v2 tags that
// mp3.ReadInfo checked (go-mp3 would allocate whatever size a forged tag
// claims), and hides io.Seeker from it (with one, go-mp3 scans the whole
// file up front).
func NewGapless(r io.ReaderAt, size int64, info MP3Info) (*Gapless, error) {
	src := bufio.NewReaderSize(io.NewSectionReader(r, info.AudioOffset, size-info.AudioOffset), readBufferSize)
	dec, err := gomp3.NewDecoder(src)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("decode first frame: no audio data")
		}
		return nil, fmt.Errorf("decode first frame: %w", err)
	}
	g := &Gapless{info: info, dec: dec, left: -1}
	var skipFrames int64
	if info.HasInfoTag {
		// go-mp3 decodes an info frame as one frame (1152 samples) of
		// silence.
		skipFrames += int64(info.SamplesPerFrame)
	}
	if info.Gapless {
		skipFrames += int64(info.EncoderDelay) + DecoderDelay
		g.left = info.TotalSamples * BytesPerFrame
	}
	g.skip = skipFrames * BytesPerFrame
	return g, nil
}

// Info is the parsed header.
func (g *Gapless) Info() MP3Info { return g.info }

// Position is how much audio Read has returned.
func (g *Gapless) Position() time.Duration {
	return time.Duration(g.pos) * time.Second / SampleRate
}

// Frames is how many PCM frames Read has returned.
func (g *Gapless) Frames() int64 { return g.pos }

// Truncated reports whether the stream ended before the length its LAME
// tag promised (a file cut short): what was there has been played.
func (g *Gapless) Truncated() bool { return g.truncated }

// Read fills p with whole s16le stereo frames; len(p) must be at least
// BytesPerFrame. It returns io.EOF after the last original sample, and a
// wrapped go-mp3 error if a frame cannot be decoded.
func (g *Gapless) Read(p []byte) (int, error) {
	p = p[:len(p)&^(BytesPerFrame-1)]
	if len(p) == 0 {
		return 0, errors.New("gapless read: buffer smaller than one frame")
	}
	for g.skip > 0 {
		if g.drop == nil {
			g.drop = make([]byte, 1152*BytesPerFrame)
		}
		n, err := g.dec.Read(g.drop[:min(int64(len(g.drop)), g.skip)])
		g.skip -= int64(n)
		if err != nil {
			return 0, g.decodeErr(err)
		}
	}
	g.drop = nil
	if g.left == 0 {
		return 0, io.EOF
	}
	if g.left > 0 && int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.dec.Read(p)
	g.pos += int64(n / BytesPerFrame)
	if g.left > 0 {
		g.left -= int64(n)
	}
	if err != nil {
		return n, g.decodeErr(err)
	}
	return n, nil
}

func (g *Gapless) decodeErr(err error) error {
	if errors.Is(err, io.EOF) {
		if g.left > 0 {
			g.truncated = true
		}
		return io.EOF
	}
	return fmt.Errorf("decode at %s: %w", g.Position().Round(time.Millisecond), err)
}

package uploads

// This file runs the decoders both passes share: the original, decoded to
// interleaved stereo float32 at one rate, whatever its format, and an MP3
// whose parts differ in rate or channels (two files joined with cat)
// decoded part by part, each at its own rate.

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// partHeadroom scales a part down before sox resamples it and back up
// after: sox reads float samples into integers and clips whatever is
// above full scale, and decoded MP3 peaks often are (18 dB of room here).
const partHeadroom = 8

// decodeRate is the rate a job's decoders deliver: the original's, or the
// house rate when the parts of a joined MP3 differ in rate, so that every
// part is resampled from its own rate and none plays at another's speed.
func (s sniffed) decodeRate() int {
	for _, p := range s.Parts {
		if p.Rate != s.SampleRate {
			return 44100
		}
	}
	return s.SampleRate
}

// decode runs j's decoders on j.orig (an MP3 part by part, each from
// stdin) and hands fn interleaved stereo float32 frames at j.rate, the
// first skip frames dropped. It returns how
// many decoding errors the decoders reported on stderr.
func (l *Library) decode(ctx context.Context, j *job, skip int, fn func([]float32)) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, l.toolBudget(j.s.EstSeconds))
	defer cancel()
	fn = skipFrames(skip, fn)
	if len(j.s.Parts) == 0 {
		return l.runDecoder(ctx, l.decoder(ctx, j.orig, j.s.Format), fn)
	}
	f, err := os.Open(j.orig)
	if err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	defer f.Close()
	errs := 0
	for i, p := range j.s.Parts {
		n, err := l.decodePart(ctx, io.NewSectionReader(f, p.Offset, p.Size), p.Rate, j.rate, fn)
		errs += n
		if err != nil {
			if len(j.s.Parts) > 1 {
				err = fmt.Errorf("part %d of %d: %w", i+1, len(j.s.Parts), err)
			}
			return errs, err
		}
	}
	return errs, nil
}

// decoder is the program that decodes format from path ("-" for stdin):
// mpg123 for MPEG audio (conformant for MPEG-1/2/2.5 and it trims encoder
// delay and padding from the LAME tag, which sox's libmad reader ignores);
// sox for WAV, FLAC and Ogg Vorbis. Both write the original rate, mono
// duplicated to stereo. mpg123 runs without -q: its per-frame error lines
// are how a damaged stream is told from a good one.
func (l *Library) decoder(ctx context.Context, path, format string) *tool {
	if strings.HasPrefix(format, "mp") {
		return l.tool(ctx, "mpg123", "--gapless", "--stereo", "-e", "f32", "-s", path)
	}
	return l.tool(ctx, "sox", "-V1", "-t", format, path,
		"-t", "raw", "-e", "floating-point", "-b", "32", "-c", "2", "-")
}

// runDecoder runs dec and passes its output to fn.
func (l *Library) runDecoder(ctx context.Context, dec *tool, fn func([]float32)) (int, error) {
	out, err := dec.cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := dec.start(); err != nil {
		return 0, err
	}
	rerr := readFrames(out, fn)
	if err := dec.cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return dec.stderr.errors, fmt.Errorf("decoder stopped: %w", ctx.Err())
		}
		return dec.stderr.errors, dec.fail(err)
	}
	return dec.stderr.errors, rerr
}

// decodePart decodes one part of a joined MP3 from r and, when its rate
// is not the job's, resamples it with sox: mpg123 | Go | sox | Go, Go
// scaling by partHeadroom on either side.
func (l *Library) decodePart(ctx context.Context, r io.Reader, rate, want int, fn func([]float32)) (int, error) {
	dec := l.decoder(ctx, "-", "mp3")
	dec.cmd.Stdin = r
	if rate == want {
		return l.runDecoder(ctx, dec, fn)
	}
	sox := l.tool(ctx, "sox", "-V1",
		"-t", "raw", "-r", strconv.Itoa(rate), "-e", "floating-point", "-b", "32", "-c", "2", "-",
		"-t", "raw", "-r", strconv.Itoa(want), "-e", "floating-point", "-b", "32", "-c", "2", "-",
		"rate", "-v", strconv.Itoa(want))
	decOut, err := dec.cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	soxIn, err := sox.cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	soxOut, err := sox.cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := sox.start(); err != nil {
		return 0, err
	}
	if err := dec.start(); err != nil {
		soxIn.Close()
		sox.cmd.Wait()
		return 0, err
	}
	fed := make(chan error, 1)
	go func() {
		var werr error
		rerr := readFrames(decOut, func(x []float32) {
			if werr == nil {
				_, werr = soxIn.Write(float32Bytes(scaled(x, 1.0/partHeadroom)))
			}
		})
		soxIn.Close()
		fed <- cmpOr(rerr, werr)
	}()
	rerr := readFrames(soxOut, func(x []float32) { fn(scaled(x, partHeadroom)) })
	ferr := <-fed
	errDec, errSox := dec.cmd.Wait(), sox.cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return dec.stderr.errors, fmt.Errorf("decoder stopped: %w", ctx.Err())
	case errDec != nil:
		return dec.stderr.errors, dec.fail(errDec)
	case errSox != nil:
		return dec.stderr.errors, sox.fail(errSox)
	}
	return dec.stderr.errors, cmpOr(rerr, ferr)
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// scaled returns x times g, in a new slice when g is not 1 (x may be a
// buffer the caller keeps).
func scaled(x []float32, g float32) []float32 {
	if g == 1 {
		return x
	}
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v * g
	}
	return y
}

// skipFrames drops the first n stereo frames on their way to fn.
func skipFrames(n int, fn func([]float32)) func([]float32) {
	left := 2 * n
	return func(x []float32) {
		if left > 0 {
			k := min(left, len(x))
			x, left = x[k:], left-k
		}
		if len(x) > 0 {
			fn(x)
		}
	}
}

// warmup finds the silence a decoder puts at the start of an MP3 cut out
// of a longer stream: its first frames' data lies in the bit reservoir of
// frames the file no longer has, so mpg123 outputs zeros for them, and the
// first frame it can decode rises from zero over one granule (576
// samples) as its overlap-add has nothing before it. Looped, that is a
// hole at every seam. warmup holds back the first frames until it has
// seen where the audio starts, then drops the zeros and the rising
// granule. Real silence longer than maxFrames is left alone.
type warmup struct {
	on        bool
	granule   int // frames of one granule at the decode rate
	maxFrames int
	held      []float32
	scanned   int // frames of held looked at
	start     int // first frame above silence, -1 until seen
	dropped   int
	done      bool
	next      func([]float32)
}

// silentLevel is below half of one 16-bit step: what a decoder outputs
// for a frame it cannot decode is zero, or rounding noise around it.
const silentLevel = 1.0 / 65536

func newWarmup(j *job, next func([]float32)) *warmup {
	w := &warmup{on: j.s.MidStream, start: -1, next: next}
	if w.on {
		w.granule = int(math.Round(576 * float64(j.rate) / float64(j.s.SampleRate)))
		w.maxFrames = 4 * int(math.Round(float64(j.s.SamplesPerFrame)*float64(j.rate)/float64(j.s.SampleRate)))
	}
	return w
}

func (w *warmup) Write(x []float32) {
	if !w.on || w.done {
		w.next(x)
		return
	}
	w.held = append(w.held, x...)
	n := len(w.held) / 2
	if w.start < 0 {
		for i := w.scanned; i < n && i < w.maxFrames; i++ {
			if math.Abs(float64(w.held[2*i])) > silentLevel || math.Abs(float64(w.held[2*i+1])) > silentLevel {
				w.start = i
				break
			}
		}
		w.scanned = n
	}
	switch {
	case w.start < 0 && n >= w.maxFrames:
		w.release(0) // silence longer than any warm-up: the track's own
	case w.start >= 0:
		drop := 0
		if zeros := w.start / w.granule * w.granule; zeros > 0 {
			drop = zeros + w.granule
		}
		if n >= drop { // decided once the rising granule is all here, whatever sizes the pipe delivers
			w.release(drop)
		}
	}
}

// Flush passes on what is still held at the end of the stream.
func (w *warmup) Flush() {
	if w.on && !w.done {
		w.release(0)
	}
}

func (w *warmup) release(drop int) {
	w.done, w.dropped = true, drop
	if rest := w.held[2*drop:]; len(rest) > 0 {
		w.next(rest)
	}
	w.held = nil
}

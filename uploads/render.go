package uploads

// This file is the pipeline's third stage: the gain, and the rendition in
// the house format made and checked as the players will decode it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/mohproject/moh/internal/atomicfile"
)

// tpMargin is kept below the true-peak ceiling when choosing the gain,
// because resampling and MP3 encoding add a little overshoot.
const tpMargin = 0.3

// render picks the gain and makes the rendition (a temp file), encoding
// again when the encoder moved the level, and checks its length. after is
// the rendition as mpg123 decodes it.
func (l *Library) render(ctx context.Context, j *job) (rend string, after *meter, err error) {
	j.progress("normalising", 0)
	j.gain = l.gainFor(j.lufs, j.tp)
	for attempt := 0; ; attempt++ {
		rend, after, err = l.renderOnce(ctx, j)
		if err != nil {
			return "", nil, err
		}
		if l.opts.NormaliseOff || attempt == 2 {
			break
		}
		// The encoder shifts the level a little, depending on the
		// material (a fraction of a dB, more at low bitrates): correct
		// by what the rendition actually measures, never above the
		// true-peak ceiling.
		adj := *l.opts.TargetLUFS - after.Integrated()
		adj = min(adj, *l.opts.MaxTruePeak-after.TruePeak()-0.1)
		if math.Abs(adj) <= 0.15 {
			break
		}
		l.log.Debug("re-encoding to correct the level", "name", j.name, "lufs", round2(after.Integrated()), "adjust_db", round2(adj))
		os.Remove(rend)
		j.gain += adj
	}
	if got := after.Samples(); got < j.wantFrames-2 || got > j.wantFrames+2 {
		os.Remove(rend)
		return "", nil, fmt.Errorf("rendition of %s decodes to %d frames, want %d: gapless information lost", j.name, got, j.wantFrames)
	}
	return rend, after, nil
}

// gainFor picks the gain that brings the track to the target loudness
// without pushing its true peak over the ceiling. A quiet track with sharp
// peaks therefore ends up a little below target rather than distorted.
func (l *Library) gainFor(lufs, tp float64) float64 {
	if l.opts.NormaliseOff {
		return 0
	}
	g := *l.opts.TargetLUFS - lufs
	if limit := *l.opts.MaxTruePeak - tpMargin - tp; g > limit {
		g = limit
	}
	return g
}

// renderOnce makes the rendition into a temp file in the renditions dir
// at j.gain, then decodes it with mpg123, as a player would, to measure
// the loudness that callers will actually hear and the length.
func (l *Library) renderOnce(ctx context.Context, j *job) (string, *meter, error) {
	f, err := os.CreateTemp(l.rendDir, atomicfile.TempPrefix+"rendition-*.mp3")
	if err != nil {
		return "", nil, fmt.Errorf("create rendition: %w", err)
	}
	rend := f.Name()
	f.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(rend)
		}
	}()
	err = l.encode(ctx, j, rend, j.prime)
	if errors.Is(err, errTagFull) {
		// Cannot happen with lame's own delay and padding; if a future
		// lame pads more, a rendition without loop priming is still a
		// gapless one.
		l.log.Warn("encoding without loop priming", "err", err)
		err = l.encode(ctx, j, rend, nil)
	}
	if err != nil {
		if ctx.Err() == nil {
			err = l.diskFullCause(l.rendDir, err) // while rend still holds the space
		}
		return "", nil, err
	}
	if err := fsyncFile(rend); err != nil {
		return "", nil, err
	}
	after := newMeter(44100, 2)
	check := &job{orig: rend, rate: 44100,
		s: sniffed{Format: "mp3", SampleRate: 44100, Channels: 2, EstSeconds: float64(j.wantFrames) / 44100}}
	if _, err := l.decode(ctx, check, 0, after.Write); err != nil {
		return "", nil, fmt.Errorf("check rendition: %w", err)
	}
	ok = true
	return rend, after, nil
}

// encode runs decoder | Go | sox | Go | lame into rend. Go applies the
// gain in floating point, before sox reads the samples into integers and
// would clip every decoded peak above full scale (the gain leaves the
// true peak under the ceiling); with prime, Go also feeds the track's
// tail before and its head after the decoder's output, and the LAME tag
// is patched afterwards to hide them (loopprime.go). sox resamples to
// 44.1 kHz and dithers to 16 bit; lame writes the LAME tag by seeking
// back into its output file.
func (l *Library) encode(ctx context.Context, j *job, rend string, prime *loopPrime) error {
	ctx, cancel := context.WithTimeout(ctx, l.toolBudget(j.s.EstSeconds)*2)
	defer cancel()
	sox := l.tool(ctx, "sox", "-V1",
		"-t", "raw", "-r", strconv.Itoa(j.rate), "-e", "floating-point", "-b", "32", "-c", "2", "-",
		"-t", "raw", "-r", "44100", "-e", "signed-integer", "-b", "16", "-c", "2", "-",
		"rate", "-v", "44100")
	lameArgs := append([]string{"--silent", "-r", "-s", "44.1", "--bitwidth", "16", "--signed", "--little-endian"}, l.lameQuality()...)
	lame := l.tool(ctx, "lame", append(lameArgs, "-m", "j", "-q", "2", "--noreplaygain", "-", rend)...)
	soxIn, err := sox.cmd.StdinPipe()
	if err != nil {
		return err
	}
	soxOut, err := sox.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	lameIn, err := lame.cmd.StdinPipe()
	if err != nil {
		return err
	}
	for _, t := range []*tool{lame, sox} {
		if err := t.start(); err != nil {
			cancel()
			soxIn.Close()
			lameIn.Close()
			sox.cmd.Wait()
			lame.cmd.Wait()
			return err
		}
	}
	g := float32(math.Pow(10, j.gain/20))
	type fedErrs struct{ dec, write error }
	fed := make(chan fedErrs, 1)
	go func() {
		dctx, stop := context.WithCancel(ctx)
		defer stop()
		var werr error
		write := func(x []float32) {
			if werr != nil {
				return
			}
			if _, werr = soxIn.Write(float32Bytes(scaled(x, g))); werr != nil {
				stop() // sox is gone: no use decoding on
			}
		}
		if prime != nil {
			write(prime.tail)
		}
		_, derr := l.decode(dctx, j, j.lead, write)
		if prime != nil && derr == nil {
			write(prime.head)
		}
		soxIn.Close()
		fed <- fedErrs{derr, werr}
	}()
	// Go copies between sox and lame only to report progress.
	total := float64(max(j.wantFrames, 1) * 4)
	if prime != nil {
		total += float64(prime.out * 2 * 4)
	}
	var done int64
	copyErr := copyProgress(lameIn, soxOut, func(n int64) {
		done += n
		j.progress("encoding", float64(done)/total)
	})
	lameIn.Close()
	if copyErr != nil {
		cancel()
	}
	fe := <-fed
	errSox, errLame := sox.cmd.Wait(), lame.cmd.Wait()
	switch {
	case ctx.Err() != nil && copyErr == nil:
		return fmt.Errorf("encode: %w", ctx.Err())
	case fe.dec != nil && fe.write == nil:
		return fmt.Errorf("encode: decoder: %w", fe.dec)
	case errSox != nil:
		return fmt.Errorf("encode: %w", sox.fail(errSox))
	case errLame != nil:
		return fmt.Errorf("encode: %w", lame.fail(errLame))
	case fe.write != nil:
		return fmt.Errorf("encode: feed sox: %w", fe.write)
	case copyErr != nil:
		return fmt.Errorf("encode: %w", copyErr)
	}
	if prime != nil {
		return patchLAMETag(rend, prime.out, prime.out)
	}
	return nil
}

// copyProgress copies r to w, telling step how many bytes each write
// carried.
func copyProgress(w io.Writer, r io.Reader, step func(int64)) error {
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			step(int64(n))
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// lameQuality: VBR -V 2 by default (transparent, ~190 kbit/s, and it keeps
// the level: CBR 192 measured 0.3-0.4 LU quieter than its input here), or
// CBR at BitrateKbps when set.
func (l *Library) lameQuality() []string {
	if l.opts.BitrateKbps > 0 {
		return []string{"--cbr", "-b", strconv.Itoa(l.opts.BitrateKbps)}
	}
	return []string{"-V", "2"}
}

package uploads

// This file is the pipeline's second stage: what the file is and whether
// moh takes it. Every refusal of a received file is decided here, from the
// cheap checks (sniff.go) and the first decode, at the original rate,
// which also measures the loudness the gain is chosen by.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// truncSlack is how many samples a decoded stream may fall short of what
// its header promises before the file counts as cut off (two MP3 frames of
// decoder priming and padding).
const truncSlack = 2 * 1152

// maxPlausibleLUFS: no recording is louder. A full-scale sine in both
// channels measures 0 LUFS and full-scale square waves a few LU more; a
// stream of valid frame headers over random payload decodes to noise far
// above full scale (measured +149 LUFS).
const maxPlausibleLUFS = 3.0

// maxErrorShare is the share of frames mpg123 may report errors in before
// a stream counts as damaged: a frame or two of dropout is concealed and
// worth keeping, garbage between valid headers errs in most frames.
const maxErrorShare = 0.01

// analyse sniffs j.orig, decodes it once at the original rate while
// measuring loudness and keeping the loop context, and refuses it
// (a *Refusal) if it is not a track moh can play.
func (l *Library) analyse(ctx context.Context, j *job) error {
	f, err := os.Open(j.orig)
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	j.s, err = sniff(f, j.size)
	f.Close()
	if err != nil {
		return err
	}
	s := &j.s
	if s.EstSeconds > l.opts.MaxDuration.Seconds()*1.01 {
		return refuse(CodeTooLong, fmt.Sprintf("the track is %s long; the limit is %s", fmtDur(s.EstSeconds), fmtDur(l.opts.MaxDuration.Seconds())))
	}
	j.rate = s.decodeRate()

	// Pass 1: decode and measure.
	j.progress("decoding", 0)
	before := newMeter(j.rate, 2)
	primeIn, primeOut := primeFrames(j.rate, l.primeTarget())
	edges := newPrimeCapture(primeIn)
	est := max(s.EstSeconds*float64(j.rate), 1)
	warm := newWarmup(j, func(x []float32) {
		before.Write(x)
		edges.Write(x)
		j.progress("measuring", float64(before.Samples())/est)
	})
	errs, err := l.decode(ctx, j, 0, warm.Write)
	warm.Flush()
	j.lead, j.frames = warm.dropped, before.Samples()
	if j.lead > 0 {
		l.log.Debug("dropped the decoder's warm-up: the stream starts mid-stream", "name", j.name, "frames", j.lead)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.log.Warn("decoder failed", "name", j.name, "format", s.Detail, "decoded_frames", j.frames, "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			return refuse(CodeDecodeFailed, fmt.Sprintf("decoding the %s took longer than %s; the file may be damaged", s.Detail, l.toolBudget(s.EstSeconds).Round(time.Second)))
		}
		if j.frames == 0 {
			return refuse(CodeDecodeFailed, fmt.Sprintf("the %s could not be decoded: %s", s.Detail, publicDetail(err)))
		}
	}
	if err := l.refuseDecoded(j, errs, err); err != nil {
		return err
	}
	j.lufs, j.tp = before.Integrated(), before.TruePeak()
	switch {
	case math.IsInf(j.lufs, -1):
		return refuse(CodeSilent, "the file is silent (nothing above -70 LUFS): callers would hear nothing")
	case j.lufs > maxPlausibleLUFS:
		return refuse(CodeCorrupt, fmt.Sprintf("the file is damaged: it decodes to noise at %+.0f LUFS, louder than any recording can be", j.lufs))
	}
	j.prime = edges.prime(j.frames, primeOut)
	j.wantFrames = int64(math.Round(float64(j.frames) * 44100 / float64(j.rate)))
	// The rendition needs room for itself on top of the margin.
	return l.checkDisk(int64(j.seconds()*320*1000/8) + 1<<20) // worst case: 320 kbit/s
}

// refuseDecoded holds what pass 1 decoded to the length and integrity
// rules: cut off, damaged, too short, too long. decErr is the decoder's
// failure after it had decoded some audio.
func (l *Library) refuseDecoded(j *job, errs int, decErr error) error {
	s := &j.s
	secs := j.seconds()
	if s.Truncated || decErr != nil || s.DeclaredSamples > 0 && j.frames+int64(j.lead) < s.DeclaredSamples-truncSlack {
		msg := "the file is cut off: the audio ends at " + fmtDur(secs)
		if s.DeclaredSamples > j.frames {
			msg += " of the " + fmtDur(float64(s.DeclaredSamples)/float64(j.rate)) + " its header announces"
		}
		if decErr != nil {
			msg += " (decoder: " + publicDetail(decErr) + ")"
		}
		return refuse(CodeTruncated, msg)
	}
	if s.Frames > 0 && errs > 3 && float64(errs) > maxErrorShare*float64(s.Frames) {
		return refuse(CodeCorrupt, fmt.Sprintf("the file is damaged: the decoder reported %d errors in its %d frames", errs, s.Frames))
	}
	switch {
	case j.frames == 0:
		return refuse(CodeTooShort, fmt.Sprintf("the file holds no audio the decoder could read; moh needs at least %.0f s", minDuration.Seconds()))
	case secs < 0.01:
		return refuse(CodeTooShort, fmt.Sprintf("the track holds almost no audio (under 0.01 s); moh needs at least %.0f s", minDuration.Seconds()))
	case secs < minDuration.Seconds():
		return refuse(CodeTooShort, fmt.Sprintf("the track is only %s long; moh needs at least %.0f s", fmtDur(secs), minDuration.Seconds()))
	case secs > l.opts.MaxDuration.Seconds():
		return refuse(CodeTooLong, fmt.Sprintf("the track is %s long; the limit is %s", fmtDur(secs), fmtDur(l.opts.MaxDuration.Seconds())))
	}
	return nil
}

// fmtDur words a length as a person reads it: "0.50 s", "2.5 s",
// "3 min 5 s", "1 h 30 min", "10 h".
func fmtDur(secs float64) string {
	switch {
	case secs < 1:
		return fmt.Sprintf("%.2f s", secs)
	case secs < 59.95:
		return fmt.Sprintf("%.1f s", secs)
	}
	t := int64(math.Round(secs))
	h, m, s := t/3600, t/60%60, t%60
	switch {
	case h > 0 && m == 0:
		return fmt.Sprintf("%d h", h)
	case h > 0:
		return fmt.Sprintf("%d h %d min", h, m)
	case s == 0:
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d min %d s", m, s)
}

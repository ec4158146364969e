package uploads

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mohproject/moh/internal/atomicfile"
)

// idLen hex digits of the content hash name a track: 64 bits, so two
// different uploads practically never collide, short enough for URLs.
const idLen = 16

// CodeSilent refuses a file with nothing audible in it: on a phone line it
// would sound like a broken system, and the watchdog would take it for one.
const CodeSilent = "silent"

// truncSlack is how many samples a decoded stream may fall short of what
// its header promises before the file counts as cut off (two MP3 frames of
// decoder priming and padding).
const truncSlack = 2 * 1152

// tpMargin is kept below the true-peak ceiling when choosing the gain,
// because resampling and MP3 encoding add a little overshoot.
const tpMargin = 0.3

type reporter func(stage string, fraction float64, bytes int64)

// Ingest reads one uploaded file, checks it, builds its rendition and adds
// it to the end of the playlist. name is the client's file name, kept as
// metadata only. If the same content is already in the library, it returns
// that track with existed = true. Errors caused by the file are *Refusal.
func (l *Library) Ingest(ctx context.Context, name string, r io.Reader, progress func(Progress)) (Track, bool, error) {
	var last Progress
	report := func(stage string, fraction float64, n int64) {
		p := Progress{Stage: stage, Fraction: min(max(fraction, 0), 1), Bytes: n}
		// Called for every buffer; pass on only steps a person can see.
		if progress == nil || p.Stage == last.Stage && p.Fraction-last.Fraction < 0.01 && p.Bytes-last.Bytes < 1<<20 && p.Stage != "done" {
			return
		}
		last = p
		progress(p)
	}
	name = cleanName(name)
	if err := l.checkDisk(0); err != nil {
		return Track{}, false, err
	}
	tmp, id, size, err := l.receive(ctx, r, report)
	if err != nil {
		return Track{}, false, err
	}
	defer os.Remove(tmp) // a no-op once it has been renamed into the store
	if t, ok := l.Get(id); ok {
		report("done", 1, size)
		return t, true, nil
	}
	select {
	case l.work <- struct{}{}:
	case <-ctx.Done():
		return Track{}, false, ctx.Err()
	}
	defer func() { <-l.work }()
	if t, ok := l.Get(id); ok { // the same file may have finished meanwhile
		report("done", 1, size)
		return t, true, nil
	}
	start := l.opts.Now()
	t, err := l.process(ctx, tmp, id, name, size, report, func(rend string, t Track) error {
		return l.commitTrack(tmp, rend, t)
	})
	if err != nil {
		if rf, ok := AsRefusal(err); ok {
			l.log.Info("upload refused", "name", name, "code", rf.Code, "reason", rf.Message)
		} else {
			l.log.Error("ingest failed", "name", name, "err", err)
		}
		return Track{}, false, err
	}
	l.log.Info("track added", "id", t.ID, "name", t.Name, "format", t.Detail, "duration", t.Duration.Round(time.Millisecond),
		"lufs_before", round2(t.LoudnessBefore), "lufs_after", round2(t.LoudnessAfter), "gain_db", round2(t.GainDB),
		"took", time.Since(start).Round(time.Millisecond))
	report("done", 1, size)
	l.notify()
	return t, false, nil
}

// receive streams r into a temp file in the store while hashing it and
// enforcing the size cap and the disk margin.
func (l *Library) receive(ctx context.Context, r io.Reader, report reporter) (tmp, id string, size int64, err error) {
	f, err := os.CreateTemp(l.origDir, atomicfile.TempPrefix+"upload-*")
	if err != nil {
		return "", "", 0, fmt.Errorf("receive upload: %w", err)
	}
	path := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var sinceCheck int64
	for {
		if err := ctx.Err(); err != nil {
			return "", "", 0, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > l.opts.MaxBytes {
				return "", "", 0, refuse(CodeTooLarge, fmt.Sprintf("the file is larger than the %s limit", mib(uint64(l.opts.MaxBytes))))
			}
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return "", "", 0, fmt.Errorf("receive upload: %w", err)
			}
			if sinceCheck += int64(n); sinceCheck >= 8<<20 {
				sinceCheck = 0
				if err := l.checkDisk(0); err != nil {
					return "", "", 0, err
				}
			}
			report("receiving", 0, size)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return "", "", 0, fmt.Errorf("receive upload: %w", rerr)
		}
	}
	if size == 0 {
		return "", "", 0, refuse(CodeEmpty, "the file is empty")
	}
	if err := f.Sync(); err != nil {
		return "", "", 0, fmt.Errorf("receive upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", "", 0, fmt.Errorf("receive upload: %w", err)
	}
	return path, hex.EncodeToString(h.Sum(nil))[:idLen], size, nil
}

// process runs the checks, the two decode passes and the encode, then
// hands the rendition (a temp file) and the track to store. tmp is the
// original.
func (l *Library) process(ctx context.Context, tmp, id, name string, size int64, report reporter, store func(rend string, t Track) error) (Track, error) {
	f, err := os.Open(tmp)
	if err != nil {
		return Track{}, fmt.Errorf("open upload: %w", err)
	}
	s, err := sniff(f, size)
	f.Close()
	if err != nil {
		return Track{}, err
	}
	if s.EstSeconds > l.opts.MaxDuration.Seconds()*1.01 {
		return Track{}, refuse(CodeTooLong, fmt.Sprintf("the track is %s long; the limit is %s", fmtDur(s.EstSeconds), fmtDur(l.opts.MaxDuration.Seconds())))
	}

	// Pass 1: decode at the original rate and measure loudness there.
	report("decoding", 0, size)
	before := newMeter(s.SampleRate, 2)
	primeIn, primeOut := primeFrames(s.SampleRate, l.primeTarget())
	edges := newPrimeCapture(primeIn)
	est := max(s.EstSeconds*float64(s.SampleRate), 1)
	err = l.decode(ctx, tmp, s, func(x []float32) {
		before.Write(x)
		edges.Write(x)
		report("measuring", float64(before.Samples())/est, size)
	})
	decoded := before.Samples()
	if err != nil {
		if ctx.Err() != nil {
			return Track{}, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return Track{}, refuse(CodeDecodeFailed, fmt.Sprintf("decoding the %s took longer than %s; the file may be damaged", s.Detail, l.toolBudget(s.EstSeconds).Round(time.Second)))
		}
		if decoded == 0 {
			return Track{}, refuse(CodeDecodeFailed, fmt.Sprintf("the %s could not be decoded: %v", s.Detail, err))
		}
	}
	secs := float64(decoded) / float64(s.SampleRate)
	if s.Truncated || err != nil || s.DeclaredSamples > 0 && decoded < s.DeclaredSamples-truncSlack {
		msg := fmt.Sprintf("the file is cut off: the audio ends at %.1f s", secs)
		if s.DeclaredSamples > decoded {
			msg += fmt.Sprintf(" of the %.1f s its header announces", float64(s.DeclaredSamples)/float64(s.SampleRate))
		}
		if err != nil {
			msg += fmt.Sprintf(" (decoder: %v)", err)
		}
		return Track{}, refuse(CodeTruncated, msg)
	}
	if secs < minDuration.Seconds() {
		return Track{}, refuse(CodeTooShort, fmt.Sprintf("the track is only %.2f s long; moh needs at least %.0f s", secs, minDuration.Seconds()))
	}
	if secs > l.opts.MaxDuration.Seconds() {
		return Track{}, refuse(CodeTooLong, fmt.Sprintf("the track is %s long; the limit is %s", fmtDur(secs), fmtDur(l.opts.MaxDuration.Seconds())))
	}
	lufs, tp := before.Integrated(), before.TruePeak()
	if math.IsInf(lufs, -1) {
		return Track{}, refuse(CodeSilent, "the file is silent (nothing above -70 LUFS): callers would hear nothing")
	}

	report("normalising", 0, size)
	gain := l.gainFor(lufs, tp)
	// The rendition needs room for itself on top of the margin.
	want := int64(secs*320*1000/8) + 1<<20 // worst case: 320 kbit/s
	if err := l.checkDisk(want); err != nil {
		return Track{}, err
	}
	wantFrames := int64(math.Round(float64(decoded) * 44100 / float64(s.SampleRate)))
	prime := edges.prime(decoded, primeOut)
	var rend string
	var after *meter
	for attempt := 0; ; attempt++ {
		rend, after, err = l.render(ctx, tmp, s, gain, wantFrames, prime, report, size)
		if err != nil {
			return Track{}, err
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
		l.log.Debug("re-encoding to correct the level", "name", name, "lufs", round2(after.Integrated()), "adjust_db", round2(adj))
		os.Remove(rend)
		gain += adj
	}
	defer os.Remove(rend) // no-op once stored
	if got := after.Samples(); got < wantFrames-2 || got > wantFrames+2 {
		return Track{}, fmt.Errorf("rendition of %s decodes to %d frames, want %d: gapless information lost", name, got, wantFrames)
	}

	report("storing", 0, size)
	t := Track{
		ID: id, Name: name, Format: s.Format, Detail: s.Detail,
		Duration:   time.Duration(float64(after.Samples()) / 44100 * float64(time.Second)),
		SampleRate: s.SampleRate, Channels: s.Channels,
		LoudnessBefore: round2(lufs), TruePeakBefore: round2(tp),
		LoudnessAfter: round2(after.Integrated()), TruePeakAfter: round2(after.TruePeak()),
		GainDB: round2(gain), Added: l.opts.Now().UTC(), Size: size,
		Normalised: !l.opts.NormaliseOff, TargetLUFS: *l.opts.TargetLUFS,
	}
	if l.opts.NormaliseOff {
		t.TargetLUFS = 0
	}
	l.fillPaths(&t)
	if err := store(rend, t); err != nil {
		return Track{}, err
	}
	return t, nil
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

// decode runs the format's decoder and passes interleaved stereo float32
// frames at the original rate to fn.
func (l *Library) decode(ctx context.Context, path string, s sniffed, fn func([]float32)) error {
	ctx, cancel := context.WithTimeout(ctx, l.toolBudget(s.EstSeconds))
	defer cancel()
	cmd := l.decodeCmd(ctx, path, s)
	var stderr stderrTail
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start decoder: %w", err)
	}
	rerr := readFrames(out, fn)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("decoder stopped: %w", ctx.Err())
		}
		return toolError(filepath.Base(cmd.Args[3]), err, &stderr)
	}
	return rerr
}

// decodeCmd: mpg123 for MPEG audio (conformant for MPEG-1/2/2.5 and it
// trims encoder delay and padding from the LAME tag, which sox's libmad
// reader ignores); sox for WAV, FLAC and Ogg Vorbis. Both write the
// original rate, mono duplicated to stereo.
func (l *Library) decodeCmd(ctx context.Context, path string, s sniffed) *exec.Cmd {
	if strings.HasPrefix(s.Format, "mp") {
		return l.command(ctx, l.opts.Tools.MPG123, "-q", "--gapless", "--stereo", "-e", "f32", "-s", path)
	}
	return l.command(ctx, l.opts.Tools.Sox, "-V1", "-t", s.Format, path,
		"-t", "raw", "-e", "floating-point", "-b", "32", "-c", "2", "-")
}

// render makes the rendition into a temp file in the renditions dir:
// decoder | sox (gain, high-quality resample to 44.1 kHz, dither to 16 bit)
// | lame (CBR, writes the LAME tag by seeking back into its output file).
// It then decodes the result with mpg123, as a player would, to measure the
// loudness that callers will actually hear and check the length.
func (l *Library) render(ctx context.Context, orig string, s sniffed, gain float64, wantFrames int64, prime *loopPrime, report reporter, size int64) (string, *meter, error) {
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
	err = l.encode(ctx, orig, rend, s, gain, wantFrames, prime, report, size)
	if errors.Is(err, errTagFull) {
		// Cannot happen with lame's own delay and padding; if a future
		// lame pads more, a rendition without loop priming is still a
		// gapless one.
		l.log.Warn("encoding without loop priming", "err", err)
		err = l.encode(ctx, orig, rend, s, gain, wantFrames, nil, report, size)
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
	rs := sniffed{Format: "mp3", SampleRate: 44100, Channels: 2, EstSeconds: float64(wantFrames) / 44100}
	if err := l.decode(ctx, rend, rs, after.Write); err != nil {
		return "", nil, fmt.Errorf("check rendition: %w", err)
	}
	ok = true
	return rend, after, nil
}

// encode runs decoder | sox | lame into rend. With prime, Go feeds sox the
// track's tail, the decoder's output and the track's head, and the LAME
// tag is patched afterwards to hide them (loopprime.go).
func (l *Library) encode(ctx context.Context, orig, rend string, s sniffed, gain float64, wantFrames int64, prime *loopPrime, report reporter, size int64) error {
	ctx, cancel := context.WithTimeout(ctx, l.toolBudget(s.EstSeconds)*2)
	defer cancel()
	var decErr, soxErr, lameErr stderrTail
	dec := l.decodeCmd(ctx, orig, s)
	dec.Stderr = &decErr
	sox := l.command(ctx, l.opts.Tools.Sox, "-V1",
		"-t", "raw", "-r", strconv.Itoa(s.SampleRate), "-e", "floating-point", "-b", "32", "-c", "2", "-",
		"-t", "raw", "-r", "44100", "-e", "signed-integer", "-b", "16", "-c", "2", "-",
		"vol", strconv.FormatFloat(math.Pow(10, gain/20), 'f', 6, 64), "rate", "-v", "44100")
	sox.Stderr = &soxErr
	lameArgs := append([]string{"--silent", "-r", "-s", "44.1", "--bitwidth", "16", "--signed", "--little-endian"}, l.lameQuality()...)
	lame := l.command(ctx, l.opts.Tools.Lame, append(lameArgs, "-m", "j", "-q", "2", "--noreplaygain", "-", rend)...)
	lame.Stderr = &lameErr

	var err error
	var decOut *os.File // write end of the decoder's pipe, closed once it runs
	if prime == nil {
		if sox.Stdin, err = dec.StdoutPipe(); err != nil {
			return err
		}
	} else {
		// An os.Pipe rather than StdoutPipe: dec.Wait must not close the
		// read end while exec still copies it into sox.
		pr, pw, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		defer pr.Close()
		defer pw.Close()
		dec.Stdout, decOut = pw, pw
		sox.Stdin = io.MultiReader(bytes.NewReader(float32Bytes(prime.tail)), pr, bytes.NewReader(float32Bytes(prime.head)))
	}
	soxOut, err := sox.StdoutPipe()
	if err != nil {
		return err
	}
	lameIn, err := lame.StdinPipe()
	if err != nil {
		return err
	}
	for _, c := range []*exec.Cmd{lame, sox, dec} {
		if err := c.Start(); err != nil {
			cancel()
			return fmt.Errorf("start %s: %w", filepath.Base(c.Args[3]), err)
		}
	}
	if decOut != nil {
		decOut.Close() // the decoder holds its own copy; EOF comes when it exits
	}
	// Go copies between sox and lame only to report progress.
	total := float64(max(wantFrames, 1) * 4)
	if prime != nil {
		total += float64(prime.out * 2 * 4)
	}
	var done int64
	buf := make([]byte, 64<<10)
	var copyErr error
	for {
		n, rerr := soxOut.Read(buf)
		if n > 0 {
			if _, werr := lameIn.Write(buf[:n]); werr != nil {
				copyErr = werr
				break
			}
			done += int64(n)
			report("encoding", float64(done)/total, size)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				copyErr = rerr
			}
			break
		}
	}
	lameIn.Close()
	if copyErr != nil {
		cancel()
	}
	errDec, errSox, errLame := dec.Wait(), sox.Wait(), lame.Wait()
	switch {
	case ctx.Err() != nil && copyErr == nil:
		return fmt.Errorf("encode: %w", ctx.Err())
	case errDec != nil:
		return fmt.Errorf("encode: %w", toolError("decoder", errDec, &decErr))
	case errSox != nil:
		return fmt.Errorf("encode: %w", toolError("sox", errSox, &soxErr))
	case errLame != nil:
		return fmt.Errorf("encode: %w", toolError("lame", errLame, &lameErr))
	case copyErr != nil:
		return fmt.Errorf("encode: %w", copyErr)
	}
	if prime != nil {
		return patchLAMETag(rend, prime.out, prime.out)
	}
	return nil
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

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// commitTrack renames original and rendition into place, then adds the index
// entry. Until the index is written the track does not exist: a crash
// before that leaves files that Open removes.
func (l *Library) commitTrack(origTmp, rendTmp string, t Track) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.Chmod(origTmp, 0o644); err != nil {
		return fmt.Errorf("store original: %w", err)
	}
	if err := os.Chmod(rendTmp, 0o644); err != nil {
		return fmt.Errorf("store rendition: %w", err)
	}
	if err := atomicfile.Commit(origTmp, t.OriginalPath); err != nil {
		return fmt.Errorf("store original: %w", err)
	}
	if err := atomicfile.Commit(rendTmp, t.Path); err != nil {
		os.Remove(t.OriginalPath)
		return fmt.Errorf("store rendition: %w", err)
	}
	next := append(append([]Track(nil), l.tracks...), t)
	if err := l.writeIndex(next); err != nil {
		os.Remove(t.Path)
		os.Remove(t.OriginalPath)
		return fmt.Errorf("store track: %w", err)
	}
	l.tracks = next
	return nil
}

func round2(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return -120
	}
	return math.Round(v*100) / 100
}

func fmtDur(secs float64) string {
	if secs < 60 {
		return fmt.Sprintf("%.1f s", secs)
	}
	t := int64(math.Round(secs))
	h, m, s := t/3600, t/60%60, t%60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

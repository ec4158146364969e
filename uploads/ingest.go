package uploads

// This file is the ingest pipeline's entry and its one value: a job goes
// receive (receive.go) → analyse, where every refusal is decided
// (analyse.go) → render (render.go) → commit (commit.go). The decoders
// both passes share are in decode.go, the external programs in tools.go.

import (
	"context"
	"io"
	"math"
	"os"
	"time"
)

// idLen hex digits of the content hash name a track: 64 bits, so two
// different uploads practically never collide, short enough for URLs.
const idLen = 16

// CodeSilent refuses a file with nothing audible in it: on a phone line it
// would sound like a broken system, and the watchdog would take it for one.
const CodeSilent = "silent"

type reporter func(stage string, fraction float64, bytes int64)

// job is one file going through the pipeline: what it is, then what each
// stage learned about it, so a stage takes the job and nothing else.
type job struct {
	id, name string
	orig     string // the original: the upload's temp file, or the stored original on a rebuild
	size     int64
	report   reporter

	// analyse
	s      sniffed
	rate   int   // the rate the decoders deliver (decode.go)
	frames int64 // decoded frames at rate, decoder warm-up dropped
	lead   int   // decoder warm-up frames dropped at the start
	lufs   float64
	tp     float64
	prime  *loopPrime

	// render
	gain       float64
	wantFrames int64
}

func (j *job) progress(stage string, fraction float64) { j.report(stage, fraction, j.size) }

// seconds is the decoded length.
func (j *job) seconds() float64 { return float64(j.frames) / float64(j.rate) }

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
	j := &job{id: id, name: name, orig: tmp, size: size, report: report}
	t, err := l.process(ctx, j, func(rend string, t Track) error {
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

// process runs the stages after receive on j and hands the rendition (a
// temp file) and the track to store, the commit: a new track's or a
// rebuilt rendition's.
func (l *Library) process(ctx context.Context, j *job, store func(rend string, t Track) error) (Track, error) {
	if err := l.analyse(ctx, j); err != nil {
		return Track{}, err
	}
	rend, after, err := l.render(ctx, j)
	if err != nil {
		return Track{}, err
	}
	defer os.Remove(rend) // no-op once stored
	j.progress("storing", 0)
	t := Track{
		ID: j.id, Name: j.name, Format: j.s.Format, Detail: j.s.Detail,
		Duration:   time.Duration(float64(after.Samples()) / 44100 * float64(time.Second)),
		SampleRate: j.s.SampleRate, Channels: j.s.Channels,
		LoudnessBefore: round2(j.lufs), TruePeakBefore: round2(j.tp),
		LoudnessAfter: round2(after.Integrated()), TruePeakAfter: round2(after.TruePeak()),
		GainDB: round2(j.gain), Added: l.opts.Now().UTC(), Size: j.size,
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

func round2(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return -120
	}
	return math.Round(v*100) / 100
}

package player

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// capture records, unpaced, everything the sinks a test opens accept
// (the paced sinks are tested on their own).
type capture struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	opens atomic.Int32
}

func (c *capture) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Len()
}

func (c *capture) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}

// writeHook runs before a write with the bytes captured so far; it may
// stall, or fail the write after taking n bytes.
type writeHook func(total int, p []byte) (n int, err error)

// testSink is one opened sink writing into a capture.
type testSink struct {
	c       *capture
	onWrite writeHook
	mu      sync.Mutex
	closed  bool
	unblock chan struct{} // closed by Close: wakes a stalled write
}

func (c *capture) sink(hook writeHook) *testSink {
	c.opens.Add(1)
	return &testSink{c: c, onWrite: hook, unblock: make(chan struct{})}
}

func (s *testSink) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *testSink) Write(p []byte) (int, error) {
	if s.isClosed() {
		return 0, ErrSinkClosed
	}
	n, err := len(p), error(nil)
	if s.onWrite != nil {
		n, err = s.onWrite(s.c.len(), p)
	}
	if s.isClosed() {
		return 0, ErrSinkClosed
	}
	s.c.mu.Lock()
	s.c.buf.Write(p[:n])
	s.c.mu.Unlock()
	return n, err
}

func (s *testSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.unblock)
	}
	return nil
}

// sharedCapture is an OpenSink whose every sink writes into c.
func sharedCapture(c *capture, hook writeHook) func(context.Context) (Sink, error) {
	return func(context.Context) (Sink, error) { return c.sink(hook), nil }
}

// startDirect runs a Direct over tracks with an unpaced capture sink.
func startDirect(t *testing.T, o DirectOptions, tracks []Track) (*Direct, func()) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d := NewDirect(o)
	d.SetVolume(100) // unity: bit-exact, so the output can be compared with the decode
	d.SetPlaylist(tracks)
	d.Play()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	t.Cleanup(func() { cancel() })
	return d, stop
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, timeout, 2*time.Millisecond, what, cond)
}

// checkContinuousSine asserts pcm is one continuous sine: no hole at all,
// every lap aligned with the source at lag 0 (a lost or repeated sample
// shifts all that follows), and a small residual against one fitted sine.
func checkContinuousSine(t *testing.T, pcm, src []byte) {
	t.Helper()
	lapFrames := len(src) / 4
	laps := len(pcm) / len(src)
	if hole := longestHole(pcm); hole > 0 {
		t.Errorf("output has a hole of %d samples (%.2f ms)", hole, framesMS(hole))
	}
	if lag := pcmBestLag(pcm, src, -testPeriod/2, testPeriod/2); lag != 0 {
		t.Fatalf("output is shifted by %d samples against the source", lag)
	}
	// Compared at lag 0, a single lost or inserted sample would leave a
	// residual of ~700 LSB RMS for the rest of its lap.
	var worstLap float64
	for i := 0; i < laps; i++ {
		_, rms, _, _ := pcmDiffScaled(pcm[i*len(src):(i+1)*len(src)], src)
		worstLap = max(worstLap, rms)
	}
	rms, peak := sineFitResidual(pcm[:laps*len(src)], testPeriod)
	// Residual near the seams (±5 ms) against away from them.
	var seamPeak, innerPeak float64
	near := SampleRate / 200
	fitted := pcm[:laps*len(src)]
	gain, _, _, _ := pcmDiffScaled(fitted[:len(src)], src)
	for i := 0; i < laps*lapFrames; i++ {
		pos := i % lapFrames
		for ch := 0; ch < 2; ch++ {
			d := pcmAt(fitted, i, ch) - gain*pcmAt(src, pos, ch)
			if d < 0 {
				d = -d
			}
			if pos < near || pos >= lapFrames-near {
				seamPeak = max(seamPeak, d)
			} else {
				innerPeak = max(innerPeak, d)
			}
		}
	}
	t.Logf("%d laps: no hole; fit to one sine: residual RMS %.1f LSB, peak %.0f; per-lap RMS vs source ≤ %.1f; peak error within 5 ms of a seam %.0f, elsewhere %.0f (of amplitude %.0f)",
		laps, rms, peak, worstLap, seamPeak, innerPeak, testAmp)
	if rms > 150 || worstLap > 150 {
		t.Errorf("residual RMS %.1f / per-lap %.1f LSB: not one continuous sine", rms, worstLap)
	}
}

func TestDirectLoopsGaplessly(t *testing.T) {
	dir := t.TempDir()
	src := testSinePCM(testTrackFrames, testPeriod, testAmp)
	fixtures := gaplessFixtures(t, dir, src)
	const laps = 10
	for name, path := range fixtures {
		t.Run(name, func(t *testing.T) {
			var c capture
			d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil)},
				[]Track{{ID: name, Name: name, Path: path}})
			waitUntil(t, 60*time.Second, "10 laps", func() bool { return c.len() >= laps*len(src) })
			stop()
			st := d.Status()
			if len(st.Skipped) != 0 {
				t.Fatalf("skipped: %+v", st.Skipped)
			}
			if st.Frames < laps*testTrackFrames || st.LevelDBFS < -10 || st.SourceSilent || st.LastAudio.IsZero() {
				t.Errorf("status after 10 laps: %+v", st)
			}
			checkContinuousSine(t, c.bytes(), src)
		})
	}
}

// TestDirectTwoTracksSeamless: consecutive different tracks join without
// inserted samples (each is its own exact length, back to back).
func TestDirectTwoTracksSeamless(t *testing.T) {
	dir := t.TempDir()
	// Whole periods each, of different lengths, so the pair is one sine.
	a := testSinePCM(110*testPeriod, testPeriod, testAmp)
	b := testSinePCM(113*testPeriod, testPeriod, testAmp)
	pa := encodeLame(t, dir, "a.mp3", a, "-V2")
	pb := encodeLame(t, dir, "b.mp3", b, "-V2")
	var c capture
	_, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil)},
		[]Track{{ID: "a", Path: pa}, {ID: "b", Path: pb}})
	lap := append(append([]byte(nil), a...), b...)
	waitUntil(t, 60*time.Second, "5 laps", func() bool { return c.len() >= 5*len(lap) })
	stop()
	checkContinuousSine(t, c.bytes(), lap)
}

// TestDirectSkipsUnplayable: LSF, 48 kHz, random bytes and an empty file
// are refused with a reason and never played; the good track loops on.
func TestDirectSkipsUnplayable(t *testing.T) {
	needMP3Tools(t, "lame")
	dir := t.TempDir()
	src, good := sineTrack(t, dir, "good.mp3")
	lsf := encodeLame(t, dir, "lsf.mp3", src, "--resample", "22.05", "-b", "64")
	// 48 kHz: the same samples declared as 48 kHz input.
	raw48 := filepath.Join(dir, "48.raw")
	os.WriteFile(raw48, src, 0o644)
	mp48 := filepath.Join(dir, "48k.mp3")
	runTool(t, "lame", "--quiet", "-r", "-s", "48", "--bitwidth", "16", "--signed", "--little-endian", "-b", "128", raw48, mp48)
	junk := filepath.Join(dir, "junk.mp3")
	rnd := rand.New(rand.NewPCG(1, 2))
	jb := make([]byte, 100_000)
	for i := range jb {
		jb[i] = byte(rnd.Uint32())
	}
	os.WriteFile(junk, jb, 0o644)
	empty := filepath.Join(dir, "empty.mp3")
	os.WriteFile(empty, nil, 0o644)

	tracks := []Track{
		{ID: "lsf", Path: lsf}, {ID: "good", Path: good}, {ID: "48k", Path: mp48},
		{ID: "junk", Path: junk}, {ID: "empty", Path: empty}, {ID: "gone", Path: filepath.Join(dir, "missing.mp3")},
	}
	var c capture
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil)}, tracks)
	waitUntil(t, 60*time.Second, "4 laps", func() bool { return c.len() >= 4*len(src) })
	stop()
	want := map[string]string{
		"lsf":   "MPEG-2 LSF at 22050 Hz: go-mp3 decodes MPEG-2 Layer III incorrectly",
		"48k":   "sample rate 48000 Hz",
		"junk":  "no MPEG audio frame found",
		"empty": "no MPEG audio frame found",
		"gone":  "no such file",
	}
	got := map[string]string{}
	for _, s := range d.Status().Skipped {
		got[s.TrackID] = s.Reason
	}
	for id, frag := range want {
		if !strings.Contains(got[id], frag) {
			t.Errorf("track %s: skip reason %q, want it to contain %q", id, got[id], frag)
		}
	}
	if _, ok := got["good"]; ok {
		t.Errorf("good track skipped: %s", got["good"])
	}
	t.Logf("skip reasons: %q", got)
	// Nothing but the good track reached the output.
	checkContinuousSine(t, c.bytes(), src)
}

// TestDirectTruncatedTrack: a file cut short plays what it has, is
// reported, and the loop goes on to the next track.
func TestDirectTruncatedTrack(t *testing.T) {
	dir := t.TempDir()
	src, good := sineTrack(t, dir, "good.mp3")
	full, _ := os.ReadFile(good)
	cut := filepath.Join(dir, "cut.mp3")
	os.WriteFile(cut, full[:len(full)/2], 0o644)
	var c capture
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil)},
		[]Track{{ID: "cut", Path: cut}, {ID: "good", Path: good}})
	waitUntil(t, 60*time.Second, "3 s of audio", func() bool { return c.len() >= 3*len(src) })
	stop()
	sk := d.Status().Skipped
	if len(sk) != 1 || sk[0].TrackID != "cut" || !strings.Contains(sk[0].Reason, "truncated") {
		t.Fatalf("skipped = %+v, want the cut track reported as truncated", sk)
	}
	dec := decodeGapless(t, good)
	if n := countOccurrences(c.bytes(), dec[len(dec)/2:len(dec)/2+4000]); n < 2 {
		t.Fatalf("the good track's middle appears %d times in 3 s of output: the loop did not go on", n)
	}
}

func countOccurrences(hay, needle []byte) int { return bytes.Count(hay, needle) }

// TestDirectNoPlayableTrackBacksOff: a playlist of only bad files is not
// retried in a tight loop, and reports the fault.
func TestDirectNoPlayableTrackBacksOff(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mp3")
	os.WriteFile(bad, []byte("not audio at all, not even close"), 0o644)
	var attempts atomic.Int32
	h := &countingHandler{match: "skipping track", n: &attempts}
	var c capture
	d, stop := startDirect(t, DirectOptions{
		Logger:      slog.New(h),
		OpenSink:    sharedCapture(&c, nil),
		IdleBackoff: 50 * time.Millisecond, IdleBackoffMax: 200 * time.Millisecond,
	}, []Track{{ID: "a", Path: bad}, {ID: "b", Path: bad}})
	waitUntil(t, 10*time.Second, "the fault", func() bool { return d.Status().Fault.Class == FaultNoTrack })
	if st := d.Status(); st.State != StateFailed {
		t.Errorf("state %s, want failed", st.State)
	}
	time.Sleep(time.Second) // measuring a rate: the time span is the point
	stop()
	// 1 s at backoff 50, 100, 200, 200 ms...: about 6 rounds of 2 files.
	n := attempts.Load()
	t.Logf("%d open attempts in ~1 s with nothing playable", n)
	if n > 30 {
		t.Errorf("%d attempts in ~1 s: busy loop", n)
	}
	if c.len() != 0 {
		t.Errorf("%d bytes written with nothing playable", c.len())
	}
}

type countingHandler struct {
	match string
	n     *atomic.Int32
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.match) {
		h.n.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// gate pauses the audio loop inside a sink write once the capture holds
// at least at bytes, so a test can change things at a known sample.
type gate struct {
	at      int
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(at int) *gate {
	return &gate{at: at, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hook(total int, p []byte) (int, error) {
	if total >= g.at {
		g.once.Do(func() {
			close(g.reached)
			<-g.release
		})
	}
	return len(p), nil
}

// TestDirectSetPlaylistKeepsTrackOnAir: replacing the playlist mid-track
// lets the track finish without a gap, then follows the new order.
func TestDirectSetPlaylistKeepsTrackOnAir(t *testing.T) {
	dir := t.TempDir()
	a := testSinePCM(testTrackFrames, testPeriod, testAmp)
	b := testSinePCM(testTrackFrames, 50, testAmp)   // 882 Hz
	cc := testSinePCM(testTrackFrames, 200, testAmp) // 220.5 Hz
	pa, pb, pc := encodeLame(t, dir, "a.mp3", a, "-V2"), encodeLame(t, dir, "b.mp3", b, "-V2"), encodeLame(t, dir, "c.mp3", cc, "-V2")
	var c capture
	g := newGate(len(a) / 3)
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, g.hook)}, []Track{{ID: "a", Path: pa}})
	<-g.reached
	d.SetPlaylist([]Track{{ID: "b", Path: pb}, {ID: "a", Path: pa}, {ID: "c", Path: pc}})
	close(g.release)
	want := append(append(append([]byte(nil), a...), cc...), b...)
	waitUntil(t, 30*time.Second, "a, c, b", func() bool { return c.len() >= len(want) })
	stop()
	out := c.bytes()[:len(want)]
	// Each segment must be its source, exactly aligned: A ran to its end
	// with no gap, then C (after A in the new list), then B.
	off := 0
	for _, seg := range []struct {
		name string
		pcm  []byte
	}{{"a", a}, {"c", cc}, {"b", b}} {
		part := out[off : off+len(seg.pcm)]
		gain, rms, _, _ := pcmDiffScaled(part, seg.pcm)
		if rms > 150 || gain < 0.9 {
			t.Errorf("segment %s: residual RMS %.0f (gain %.2f): not the expected track at this place", seg.name, rms, gain)
		}
		off += len(seg.pcm)
	}
	if hole := longestHole(out); hole > 0 {
		t.Errorf("hole of %d samples", hole)
	}
}

// TestDirectSetPlaylistRemovesTrackOnAir: removing the track on air moves
// on at once (within a block) to the next track that is still listed.
func TestDirectSetPlaylistRemovesTrackOnAir(t *testing.T) {
	dir := t.TempDir()
	a := testSinePCM(testTrackFrames, testPeriod, testAmp)
	b := testSinePCM(testTrackFrames, 50, testAmp)
	pa, pb := encodeLame(t, dir, "a.mp3", a, "-V2"), encodeLame(t, dir, "b.mp3", b, "-V2")
	var c capture
	g := newGate(len(a) / 4)
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, g.hook)},
		[]Track{{ID: "a", Path: pa}, {ID: "b", Path: pb}})
	<-g.reached
	d.SetPlaylist([]Track{{ID: "b", Path: pb}})
	close(g.release)
	waitUntil(t, 30*time.Second, "b", func() bool { return c.len() >= len(a)/4+2*len(b)+2*defaultBlockFrames*4 })
	stop()
	out := c.bytes()
	// B's first samples must appear within two blocks of the change.
	i := bytes.Index(out, decodeGapless(t, pb)[:4000])
	if i < 0 {
		t.Fatal("B never played after A was removed")
	}
	late := i - len(a)/4
	t.Logf("B started %.1f ms after A was removed", framesMS(late/4))
	if late > 2*defaultBlockFrames*4 {
		t.Errorf("B started %.1f ms after A was removed: not at once", framesMS(late/4))
	}
	if st := d.Status(); st.Track == nil || st.Track.ID != "b" || st.Index != 0 {
		t.Errorf("status track %+v index %d, want b at 0", st.Track, st.Index)
	}
}

// TestDirectSinkFailuresLoseNothing: write errors (after a partial write)
// and failed opens are survived by reopening with backoff, and not one
// sample is lost or repeated.
func TestDirectSinkFailuresLoseNothing(t *testing.T) {
	dir := t.TempDir()
	src, path := sineTrack(t, dir, "s.mp3")
	var c capture
	var writes atomic.Int32
	hook := func(total int, p []byte) (int, error) {
		if writes.Add(1)%3 == 0 {
			return len(p) / 3 &^ 3, errors.New("aplay died")
		}
		return len(p), nil
	}
	var opens atomic.Int32
	var faults []string
	var fmu sync.Mutex
	open := sharedCapture(&c, hook)
	var d *Direct
	d, stop := startDirect(t, DirectOptions{
		OpenSink: func(ctx context.Context) (Sink, error) {
			if n := opens.Add(1); n%3 == 2 {
				return nil, fmt.Errorf("device busy (attempt %d)", n)
			}
			return open(ctx)
		},
		SinkBackoff: time.Millisecond, SinkBackoffMax: 4 * time.Millisecond,
	}, []Track{{ID: "s", Path: path}})
	const laps = 10
	go func() {
		for c.len() < laps*len(src) {
			if f := d.Status().Fault; !f.IsZero() {
				fmu.Lock()
				faults = append(faults, f.String())
				fmu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	waitUntil(t, 60*time.Second, "10 laps", func() bool { return c.len() >= laps*len(src) })
	stop()
	t.Logf("%d writes, %d opens", writes.Load(), opens.Load())
	if opens.Load() < 10 {
		t.Fatalf("only %d sink opens: faults were not injected", opens.Load())
	}
	fmu.Lock()
	seen := strings.Join(faults, "\n")
	fmu.Unlock()
	if !strings.Contains(seen, "aplay died") && !strings.Contains(seen, "device busy") {
		t.Errorf("no sink fault seen in status")
	}
	checkContinuousSine(t, c.bytes(), src)
}

// TestDirectRecoverRestartBackendUnblocksStalledSink: a sink stuck in
// Write (aplay wedged) is closed by the restart rung and a new one takes
// over.
func TestDirectRecoverRestartBackendUnblocksStalledSink(t *testing.T) {
	dir := t.TempDir()
	src, path := sineTrack(t, dir, "s.mp3")
	var c capture
	var stalled atomic.Bool
	stalled.Store(true)
	stuck := make(chan struct{})
	d, stop := startDirect(t, DirectOptions{OpenSink: func(context.Context) (Sink, error) {
		s := c.sink(nil)
		if stalled.CompareAndSwap(true, false) {
			s.onWrite = func(total int, p []byte) (int, error) {
				if total >= len(src) {
					close(stuck)
					<-s.unblock // wedged until closed
					return 0, ErrSinkClosed
				}
				return len(p), nil
			}
		}
		return s, nil
	}}, []Track{{ID: "s", Path: path}})
	select {
	case <-stuck:
	case <-time.After(30 * time.Second):
		t.Fatal("sink never stalled")
	}
	frames := d.Status().Frames
	time.Sleep(50 * time.Millisecond)
	if d.Status().Frames != frames {
		t.Fatal("frames still growing on a stalled sink")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Recover(ctx, RungRestartBackend); err != nil {
		t.Fatalf("restart backend: %v", err)
	}
	waitUntil(t, 30*time.Second, "audio after restart", func() bool { return c.len() >= 3*len(src) })
	stop()
	if n := c.opens.Load(); n != 2 {
		t.Errorf("%d sinks opened, want 2", n)
	}
	if err := d.Recover(ctx, RungReconnect); !errors.Is(err, ErrRungUnsupported) {
		t.Errorf("reconnect rung: %v, want ErrRungUnsupported", err)
	}
	checkContinuousSine(t, c.bytes(), src)
}

// TestDirectStopPlayAndReplay: Stop stops writing, Play resumes on the
// next sample, Replay restarts the track from its start (and resumes a
// backend that lost its Play).
func TestDirectStopPlayAndReplay(t *testing.T) {
	dir := t.TempDir()
	src, path := sineTrack(t, dir, "s.mp3")
	var c capture
	g := newGate(len(src) / 2)
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, g.hook)}, []Track{{ID: "s", Path: path}})
	<-g.reached
	d.Stop()
	close(g.release)
	waitUntil(t, 10*time.Second, "stopped", func() bool { return d.Status().State == StateStopped })
	n := c.len()
	time.Sleep(100 * time.Millisecond)
	if c.len() != n {
		t.Fatalf("wrote %d bytes while stopped", c.len()-n)
	}
	d.Play()
	waitUntil(t, 30*time.Second, "2 laps", func() bool { return c.len() >= 2*len(src) })
	d.Stop()
	waitUntil(t, 10*time.Second, "stopped", func() bool { return d.Status().State == StateStopped })
	resumed := c.bytes()
	checkContinuousSine(t, resumed, src) // stop/play lost nothing

	mark := c.len()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Recover(ctx, RungReplay); err != nil {
		t.Fatalf("replay: %v", err)
	}
	waitUntil(t, 30*time.Second, "audio after replay", func() bool { return c.len() >= mark+len(src) })
	stop()
	after := c.bytes()[mark:]
	// Replay restarts at sample 0 of the track. A stopped block may still
	// hold up to one block of the old position: find the restart there.
	i := bytes.Index(after, decodeGapless(t, path)[:4000])
	if i < 0 || i > defaultBlockFrames*4 {
		t.Fatalf("after replay the track did not start from its beginning (found at byte %d)", i)
	}
}

// TestDirectVolume: volume 0 writes silence, reported as such, while the
// source is not silent.
func TestDirectVolume(t *testing.T) {
	dir := t.TempDir()
	src, path := sineTrack(t, dir, "s.mp3")
	var c capture
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil)}, []Track{{ID: "s", Path: path}})
	waitUntil(t, 30*time.Second, "audio", func() bool { return c.len() >= len(src) })
	d.SetVolume(0)
	mark := c.len()
	waitUntil(t, 30*time.Second, "more audio", func() bool { return c.len() >= mark+2*len(src) })
	stop()
	tail := c.bytes()[mark+len(src):]
	if l := LevelDBFS(tail); l != SilenceDBFS {
		t.Errorf("volume 0: output level %.1f dBFS", l)
	}
	st := d.Status()
	if st.LevelDBFS != SilenceDBFS || st.SourceSilent {
		t.Errorf("volume 0 status: level %.1f, source silent %v", st.LevelDBFS, st.SourceSilent)
	}
}

// TestDirectFallbackLoops checks the built-in track: it is in the house
// format, its gapless decode equals mpg123's sample for sample (so the
// direct loop, proven seamless on sines above, plays it exactly), and the
// step across its loop seam is like any step inside it.
func TestDirectFallbackLoops(t *testing.T) {
	dir := t.TempDir()
	tr, err := EnsureFallback(dir)
	if err != nil {
		t.Fatal(err)
	}
	info := mustMP3Info(t, tr.Path)
	if err := CheckPlayable(info); err != nil || !info.Gapless || info.Channels != 2 {
		t.Fatalf("fallback not in the house format: %v %+v", err, info)
	}
	if info.Duration < 8*time.Second || info.Duration > 16*time.Second || len(FallbackMP3) > 300<<10 {
		t.Fatalf("fallback: %s, %d bytes", info.Duration, len(FallbackMP3))
	}
	ours, ref := decodeGapless(t, tr.Path), decodeRefMPG123(t, tr.Path)
	if len(ours) != len(ref) {
		t.Fatalf("fallback decodes to %d frames, mpg123 %d", len(ours)/4, len(ref)/4)
	}
	if _, peak := pcmDiff(ours, ref, 0); peak > 4 {
		t.Fatalf("fallback differs from mpg123's decode by %.0f LSB", peak)
	}
	// The seam: the step from the last sample to the first is no larger
	// than the steps inside the loop.
	var maxStep, seam float64
	n := len(ours) / 4
	for i := 1; i < n; i++ {
		for ch := 0; ch < 2; ch++ {
			maxStep = max(maxStep, abs64(pcmAt(ours, i, ch)-pcmAt(ours, i-1, ch)))
		}
	}
	for ch := 0; ch < 2; ch++ {
		seam = max(seam, abs64(pcmAt(ours, 0, ch)-pcmAt(ours, n-1, ch)))
	}
	t.Logf("fallback: %s, %d KB; step across the loop seam %.0f LSB, largest step inside %.0f", info.Duration, len(FallbackMP3)>>10, seam, maxStep)
	if seam > maxStep {
		t.Errorf("seam step %.0f exceeds every step inside the loop (%.0f): a click", seam, maxStep)
	}
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestEnsureFallback(t *testing.T) {
	dir := t.TempDir()
	tr, err := EnsureFallback(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ID != "fallback" || tr.Path != filepath.Join(dir, FallbackFile) {
		t.Fatalf("track %+v", tr)
	}
	fi1, _ := os.Stat(tr.Path)
	if _, err := EnsureFallback(dir); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(tr.Path)
	if !os.SameFile(fi1, fi2) {
		t.Error("unchanged fallback was rewritten")
	}
	os.WriteFile(tr.Path, []byte("damaged"), 0o644)
	if _, err := EnsureFallback(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(tr.Path); !bytes.Equal(got, FallbackMP3) {
		t.Error("damaged fallback not restored")
	}
	if _, err := EnsureFallback(filepath.Join(dir, "missing", "dir")); err == nil {
		t.Error("no error for a missing directory")
	}
}

// countSink discards audio and counts it, so a benchmark measures the
// direct loop itself (decode, trim, gain, level), not pacing.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Write(p []byte) (int, error) { s.n.Add(int64(len(p))); return len(p), nil }
func (s *countSink) Close() error                { return nil }

// BenchmarkDirectPlayback plays the built-in track through the whole
// direct path as fast as it goes: x-realtime is the headroom, and
// core-%-at-realtime what real-time playback costs of one core. sys-MB is
// the Go runtime's memory from the OS afterwards (RSS is a little more).
func BenchmarkDirectPlayback(b *testing.B) {
	tr, err := EnsureFallback(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	sink := &countSink{}
	d := NewDirect(DirectOptions{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenSink: func(context.Context) (Sink, error) { return sink, nil },
	})
	d.SetVolume(80) // a real gain, not the unity shortcut
	d.SetPlaylist([]Track{tr})
	d.Play()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	want := int64(b.N) * SampleRate * BytesPerFrame // one second of audio per op
	b.ResetTimer()
	start := time.Now()
	go func() { done <- d.Run(ctx) }()
	for sink.n.Load() < want {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	audio := float64(sink.n.Load()) / (SampleRate * BytesPerFrame)
	x := audio / elapsed.Seconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(x, "x-realtime")
	b.ReportMetric(100/x, "core-%-at-realtime")
	b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MB")
}

// TestDirectDecodeErrorMidFile: a file whose stream turns into something
// the decoder rejects (here Layer II frames after Layer III ones) plays up
// to there, is reported with where it failed, and the loop goes on.
func TestDirectDecodeErrorMidFile(t *testing.T) {
	dir := t.TempDir()
	src, good := sineTrack(t, dir, "good.mp3")
	head, _ := os.ReadFile(encodeLame(t, dir, "untagged.mp3", src, "-t", "-b", "128"))
	l2 := encodeFFmpegArgs(t, dir, "tail.mp2", src, "-c:a", "mp2", "-b:a", "192k")
	tail, _ := os.ReadFile(l2)
	bad := filepath.Join(dir, "bad.mp3")
	os.WriteFile(bad, append(head, tail...), 0o644)
	var c capture
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil)},
		[]Track{{ID: "bad", Path: bad}, {ID: "good", Path: good}})
	dec := decodeGapless(t, good)
	waitUntil(t, 60*time.Second, "the good track twice", func() bool {
		return countOccurrences(c.bytes(), dec[len(dec)/2:len(dec)/2+4000]) >= 2
	})
	stop()
	sk := d.Status().Skipped
	if len(sk) != 1 || sk[0].TrackID != "bad" || !strings.Contains(sk[0].Reason, "decode at") {
		t.Fatalf("skipped = %+v, want the bad track with a decode error", sk)
	}
	t.Logf("reported: %s", sk[0].Reason)
	if bytes.Index(c.bytes(), decodeGoMP3(t, encodeLame(t, dir, "untagged2.mp3", src, "-t", "-b", "128"))[8000:12000]) < 0 {
		t.Error("the playable part of the bad track was not played")
	}
}

package player

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testPCMCache(t *testing.T, budget int64) *PCMCache {
	t.Helper()
	return NewPCMCache(PCMCacheOptions{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dir:    filepath.Join(t.TempDir(), "pcm-cache"),
		Budget: budget,
	})
}

// cachedSamples is the sample part of src's cache file, or nil.
func cachedSamples(t *testing.T, c *PCMCache, src string) []byte {
	t.Helper()
	b, err := os.ReadFile(c.pathFor(src))
	if err != nil || len(b) < pcmHeaderSize {
		return nil
	}
	return b[pcmHeaderSize:]
}

// corruptFrames overwrites the MP3's audio after its first frames with
// garbage, keeping its size and modification time: the cache still
// matches it, so output that is still the clean decode came from the
// cache, not from go-mp3.
func corruptFrames(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for i := 2000; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestPCMCacheLoopIsBitExact: the first pass decodes live while the cache
// files are built in the background, later passes play the cache files;
// the output is the exact gapless decode, pass after pass, across the
// switch from live to cached and across both track seams.
func TestPCMCacheLoopIsBitExact(t *testing.T) {
	dir := t.TempDir()
	a := encodeLame(t, dir, "a.mp3", testSinePCM(testTrackFrames, testPeriod, testAmp), "-V2")
	b := encodeLame(t, dir, "b.mp3", testSinePCM(testTrackFrames, 50, testAmp), "-V2")
	decA, decB := decodeGapless(t, a), decodeGapless(t, b)
	cache := testPCMCache(t, 0)
	var c capture
	d, stop := startDirect(t, DirectOptions{OpenSink: sharedCapture(&c, nil), PCMCache: cache},
		[]Track{{ID: "a", Path: a}, {ID: "b", Path: b}})
	cycle := append(append([]byte(nil), decA...), decB...)
	waitUntil(t, 60*time.Second, "both cache files", func() bool {
		return bytes.Equal(cachedSamples(t, cache, a), decA) && bytes.Equal(cachedSamples(t, cache, b), decB)
	})
	waitUntil(t, 10*time.Second, "the status to count both files", func() bool {
		cs := d.Status().PCMCache
		return cs != nil && *cs == PCMCacheStatus{Built: 2}
	})
	// From here on the MP3s decode to garbage: only the cache plays
	// them right.
	corruptFrames(t, a)
	corruptFrames(t, b)
	mark := c.len()
	waitUntil(t, 60*time.Second, "three more cycles", func() bool { return c.len() >= mark+4*len(cycle) })
	stop()
	out := c.bytes()
	laps := len(out) / len(cycle)
	for i := range laps {
		if !bytes.Equal(out[i*len(cycle):(i+1)*len(cycle)], cycle) {
			t.Fatalf("cycle %d of %d differs from the gapless decode (cache switch-over at byte %d)", i, laps, mark)
		}
	}
	t.Logf("%d cycles bit-exact; cache files %d + %d bytes", laps, len(decA), len(decB))
}

// TestPCMCacheRefusesBadFiles: a cache file that is short, foreign, not a
// cache file, or older than its MP3 is not played; ensure rebuilds it.
func TestPCMCacheRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	src := encodeLame(t, dir, "a.mp3", testSinePCM(testTrackFrames, testPeriod, testAmp), "-V2")
	want := decodeGapless(t, src)
	cases := []struct {
		name   string
		damage func(c *PCMCache)
		reason string
	}{
		{"short", func(c *PCMCache) {
			os.Truncate(c.pathFor(src), pcmHeaderSize+int64(len(want))-BytesPerFrame)
		}, "holds"},
		{"not a cache file", func(c *PCMCache) {
			os.WriteFile(c.pathFor(src), bytes.Repeat([]byte{1}, pcmHeaderSize+len(want)), 0o644)
		}, "not a moh PCM cache file"},
		{"for another track", func(c *PCMCache) {
			other := filepath.Join(dir, "other.mp3")
			b, _ := os.ReadFile(src)
			os.WriteFile(other, b, 0o644)
			fi, _ := os.Stat(src)
			os.Chtimes(other, fi.ModTime(), fi.ModTime())
			if err := c.ensure(other); err != nil {
				t.Fatal(err)
			}
			os.Rename(c.pathFor(other), c.pathFor(src))
		}, "another track"},
		{"stale", func(c *PCMCache) {
			later := time.Now().Add(time.Minute)
			os.Chtimes(src, later, later)
		}, "stale"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testPCMCache(t, 0)
			if err := c.ensure(src); err != nil {
				t.Fatal(err)
			}
			tc.damage(c)
			f, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dec, err := playableDecoder(f, src, c)
			if err != nil {
				t.Fatal(err)
			}
			if _, cached := dec.(*pcmSource); cached {
				t.Fatal("a damaged cache file was played")
			}
			fi, _ := f.Stat()
			info := dec.Info()
			if _, _, err := c.open(src, fi, info); err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("open: %v, want an error about %q", err, tc.reason)
			}
			if err := c.ensure(src); err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			if got := cachedSamples(t, c, src); !bytes.Equal(got, want) {
				t.Fatalf("rebuilt cache holds %d bytes, want the %d of the decode", len(got), len(want))
			}
		})
	}
}

// TestPCMCacheBudget: a track that does not fit the budget is not cached
// (it decodes live, and is not tried again), and cache files whose track
// is gone are removed before the budget is judged.
func TestPCMCacheBudget(t *testing.T) {
	dir := t.TempDir()
	a := encodeLame(t, dir, "a.mp3", testSinePCM(testTrackFrames, testPeriod, testAmp), "-V2")
	b := encodeLame(t, dir, "b.mp3", testSinePCM(testTrackFrames, 50, testAmp), "-V2")
	one := int64(pcmHeaderSize + len(decodeGapless(t, a)))
	c := testPCMCache(t, one+one/2) // room for one track
	if err := c.ensure(a); err != nil {
		t.Fatal(err)
	}
	err := c.ensure(b)
	if err == nil || !strings.Contains(err.Error(), "over the cache budget") {
		t.Fatalf("second track: %v, want over the budget", err)
	}
	if _, err := os.Stat(c.pathFor(b)); !os.IsNotExist(err) {
		t.Fatalf("over-budget track has a cache file: %v", err)
	}
	os.Remove(a) // the track is deleted: its cache file is garbage now
	if err := c.ensure(b); err != nil {
		t.Fatalf("after the first track went: %v", err)
	}
	if _, err := os.Stat(c.pathFor(a)); !os.IsNotExist(err) {
		t.Fatalf("cache file of a deleted track survived: %v", err)
	}
	c.Want([]Track{{Path: filepath.Join(dir, "missing.mp3")}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.waitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	refused := c.refused[filepath.Join(dir, "missing.mp3")]
	c.mu.Unlock()
	if !refused {
		t.Error("a track that cannot be cached would be tried again at every pass")
	}
}

// allocSink counts the heap allocations of the whole process between
// writes, so a test sees what the audio loop allocates per block.
type allocSink struct {
	n       atomic.Int64
	sample  []metrics.Sample
	measure atomic.Bool
	from    uint64
	allocs  atomic.Uint64
	bytes   atomic.Int64 // audio written while measuring
}

func newAllocSink() *allocSink {
	return &allocSink{sample: []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}}
}

func (s *allocSink) Write(p []byte) (int, error) {
	metrics.Read(s.sample)
	now := s.sample[0].Value.Uint64()
	if s.measure.Load() {
		if s.from != 0 {
			s.allocs.Add(now - s.from)
			s.bytes.Add(int64(len(p)))
		}
		s.from = now
	} else {
		s.from = 0
	}
	s.n.Add(int64(len(p)))
	return len(p), nil
}
func (s *allocSink) Close() error { return nil }

// TestPCMPlaybackAllocatesNothing: steady playback from the cache (one
// long track, no seam inside the window) allocates nothing per block:
// no garbage, no GC, nothing for a busy box to stall the line with.
func TestPCMPlaybackAllocatesNothing(t *testing.T) {
	dir := t.TempDir()
	const seconds = 20
	src := encodeLame(t, dir, "long.mp3", testSinePCM(seconds*SampleRate, testPeriod, testAmp), "-V2")
	cache := testPCMCache(t, 0)
	if err := cache.ensure(src); err != nil {
		t.Fatal(err)
	}
	sink := newAllocSink()
	d := NewDirect(DirectOptions{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenSink: func(context.Context) (Sink, error) { return sink, nil },
		PCMCache: cache,
	})
	d.SetVolume(80) // a real gain, not the unity shortcut
	d.SetPlaylist([]Track{{ID: "long", Path: src}})
	d.Play()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	per := int64(SampleRate * BytesPerFrame)
	track := seconds * per
	// Measure from 2 s to 18 s of the second pass: well inside the track.
	for sink.n.Load() < track+2*per {
		time.Sleep(time.Millisecond)
	}
	sink.measure.Store(true)
	for sink.n.Load() < 2*track-2*per {
		time.Sleep(time.Millisecond)
	}
	sink.measure.Store(false)
	audio := float64(sink.bytes.Load()) / float64(per)
	allocs := sink.allocs.Load()
	t.Logf("%d heap allocations in %.1f s of steady playback from the cache (%.2f per second of audio)", allocs, audio, float64(allocs)/audio)
	if audio < 5 {
		t.Fatalf("measured only %.1f s of audio", audio)
	}
	if allocs > 0 {
		t.Errorf("steady playback allocated %d objects in %.1f s of audio, want 0", allocs, audio)
	}
}

// TestPCMCacheStatus: the status says a build is pending until the file
// is written, counts each file written once, and is absent when the
// cache is off.
func TestPCMCacheStatus(t *testing.T) {
	dir := t.TempDir()
	a := encodeLame(t, dir, "a.mp3", testSinePCM(testTrackFrames, testPeriod, testAmp), "-V2")
	c := testPCMCache(t, 0)
	if st, ok := c.Status(); !ok || st != (PCMCacheStatus{}) {
		t.Fatalf("new cache: %+v %v, want nothing pending or built", st, ok)
	}
	c.Want([]Track{{Path: a}})
	if st, _ := c.Status(); st.Pending != 1 {
		t.Fatalf("after Want: %+v, want 1 pending", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.waitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(); st != (PCMCacheStatus{Built: 1}) {
		t.Fatalf("after the build: %+v, want 0 pending, 1 built", st)
	}
	// The file is good now: asking again builds nothing.
	c.Want([]Track{{Path: a}})
	if err := c.waitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(); st != (PCMCacheStatus{Built: 1}) {
		t.Fatalf("asked again: %+v, want still 1 built", st)
	}
	if cachedSamples(t, c, a) == nil {
		t.Fatal("no cache file although the status counts one")
	}
	if _, ok := testPCMCache(t, -1).Status(); ok {
		t.Error("a cache that is off reports a status")
	}
	var none *PCMCache
	if _, ok := none.Status(); ok {
		t.Error("no cache reports a status")
	}
}

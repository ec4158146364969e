package sysinfo

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestDiskFreeTrend: the trend is the free space's slope over the last
// hour in bytes per hour, absent until the readings span 10 minutes, and
// readings older than an hour no longer count.
func TestDiskFreeTrend(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	free := uint64(10 << 30)
	r := New(Options{Now: func() time.Time { return now }, Adjtimex: func() (bool, error) { return true, nil },
		DiskFree: func() (uint64, bool) { return free, true }})
	step := func(minutes int, perMinute int64) {
		for range minutes {
			r.Sample()
			now = now.Add(time.Minute)
			free = uint64(int64(free) + perMinute)
		}
	}
	step(9, -1<<20)
	if s := r.Read(); s.DiskFreeTrend != nil {
		t.Fatalf("trend after 8 minutes of readings: %v", *s.DiskFreeTrend)
	}
	step(51, -1<<20) // a steady 1 MiB a minute
	s := r.Read()
	if s.DiskFreeTrend == nil || math.Abs(*s.DiskFreeTrend-(-60<<20)) > 1 {
		t.Fatalf("trend = %v, want %d bytes/h", s.DiskFreeTrend, -60<<20)
	}
	// A one-off 500 MiB upload in a flat hour moves the fit, but far less
	// than the 500 MiB the first and last readings would say.
	step(30, 0)
	free -= 500 << 20
	step(31, 0)
	s = r.Read()
	if s.DiskFreeTrend == nil || *s.DiskFreeTrend >= 0 || *s.DiskFreeTrend < -800<<20 {
		t.Fatalf("trend across one upload = %v", s.DiskFreeTrend)
	}
	step(61, 0) // an hour later the upload is out of the window
	if s := r.Read(); s.DiskFreeTrend == nil || *s.DiskFreeTrend != 0 {
		t.Fatalf("trend after a flat hour = %v, want 0", s.DiskFreeTrend)
	}
	if n := len(r.trend.samples); n > 62 {
		t.Fatalf("%d readings kept, want at most an hour's", n)
	}
}

// TestUnderrunsAndRun: the underrun count is reported when a reader is
// given, absent otherwise; Run samples and stops with its context.
func TestUnderrunsAndRun(t *testing.T) {
	r := New(Options{Adjtimex: func() (bool, error) { return true, nil }})
	if s := r.Read(); s.ALSAUnderruns != nil || s.DiskFreeTrend != nil {
		t.Fatalf("no sound card, no disk reader: %+v", s)
	}
	var calls int
	r = New(Options{Adjtimex: func() (bool, error) { return true, nil }, Underruns: func() uint64 { return 7 },
		DiskFree: func() (uint64, bool) { calls++; return 1, true }, TrendEvery: time.Millisecond})
	if s := r.Read(); s.ALSAUnderruns == nil || *s.ALSAUnderruns != 7 {
		t.Fatalf("underruns = %v, want 7", s.ALSAUnderruns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	r.trend.mu.Lock()
	n := len(r.trend.samples)
	r.trend.mu.Unlock()
	if n < 2 {
		t.Fatalf("Run took %d samples in 50 ms at 1 ms", n)
	}
}

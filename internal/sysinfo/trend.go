package sysinfo

import (
	"context"
	"sync"
	"time"
)

// trendWindow is the span the disk trend is computed over: long enough
// that one upload does not read as a flood, short enough that a runaway
// writer shows within the hour.
const trendWindow = time.Hour

// trend keeps the free-space readings of the last trendWindow in RAM
// (about 60 of them; nothing is written to flash).
type trend struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	t    time.Time
	free float64
}

func (tr *trend) add(t time.Time, free uint64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.samples = append(tr.samples, sample{t, float64(free)})
	i := 0
	for i < len(tr.samples) && t.Sub(tr.samples[i].t) > trendWindow {
		i++
	}
	tr.samples = append(tr.samples[:0], tr.samples[i:]...)
}

// perHour is the least-squares slope of the readings within the window,
// in bytes per hour: a fit over every reading, not the difference of the
// first and last, so one reading taken mid-upload does not swing it. ok
// is false until the readings span minSpan.
func (tr *trend) perHour(now time.Time, minSpan time.Duration) (float64, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var in []sample
	for _, s := range tr.samples {
		if now.Sub(s.t) <= trendWindow {
			in = append(in, s)
		}
	}
	if len(in) < 2 || in[len(in)-1].t.Sub(in[0].t) < minSpan {
		return 0, false
	}
	t0 := in[0].t
	var n, sx, sy, sxx, sxy float64
	for _, s := range in {
		x := s.t.Sub(t0).Hours()
		n++
		sx += x
		sy += s.free
		sxx += x * x
		sxy += x * s.free
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / den, true
}

// Sample takes one free-space reading for the trend now.
func (r *Reporter) Sample() {
	if r.o.DiskFree == nil {
		return
	}
	if free, ok := r.o.DiskFree(); ok {
		r.trend.add(r.o.Now(), free)
	}
}

// Run samples the free space every TrendEvery until ctx is done. It
// returns nil: a reading that fails is left out, never fatal.
func (r *Reporter) Run(ctx context.Context) error {
	if r.o.DiskFree == nil {
		<-ctx.Done()
		return nil
	}
	r.Sample()
	t := time.NewTicker(r.o.TrendEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Sample()
		}
	}
}

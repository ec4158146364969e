package player

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkRecovery measures, per fault class, the time from injecting
// the fault to the watchdog detecting it and to audio flowing again, with
// the watchdog's and backends' default timings (check every 500 ms, stall
// after 2 s, MPD call timeout 1.5 s). Run it with
//
//	go test ./player/ -run '^$' -bench Recovery -benchtime 3x
//
// and read detect-ms and back-ms (targets: ≤ 3000 and ≤ 5000).
func BenchmarkRecovery(b *testing.B) {
	mpdCases := []struct {
		name   string
		inject func(b *testing.B, f *mpdFixture)
	}{
		{"mpd-sigkill", func(b *testing.B, f *mpdFixture) { killPID(b, f.m.PID(), syscall.SIGKILL) }},
		{"mpd-sigstop", func(b *testing.B, f *mpdFixture) { killPID(b, f.m.PID(), syscall.SIGSTOP) }},
		{"mpd-stop-by-client", func(b *testing.B, f *mpdFixture) { c := f.dialClient(b); _ = c.Stop(); _ = c.Close() }},
		{"mpd-pause-by-client", func(b *testing.B, f *mpdFixture) { c := f.dialClient(b); _ = c.Pause(true); _ = c.Close() }},
		{"mpd-volume-zero", func(b *testing.B, f *mpdFixture) { c := f.dialClient(b); _ = c.SetVolume(0); _ = c.Close() }},
	}
	for _, tc := range mpdCases {
		b.Run(tc.name, func(b *testing.B) {
			f, s := newSupervisedMPD(b, MPDOptions{}, WatchdogOptions{Interval: 500 * time.Millisecond}, 2)
			var detect, back time.Duration
			for b.Loop() {
				ft := s.measure(b, func() { tc.inject(b, f) })
				detect += ft.detect
				back += ft.back
			}
			report(b, detect, back)
		})
	}
	b.Run("direct-sink-killed", func(b *testing.B) {
		_, st, s := newSupervisedDirect(b, func() string { return "null" }, WatchdogOptions{Interval: 500 * time.Millisecond})
		var detect, back time.Duration
		for b.Loop() {
			ft := s.measure(b, func() {
				_, _, pid := st.counts() // read once healthy: the live aplay
				killPID(b, pid, syscall.SIGKILL)
			})
			detect += ft.detect
			back += ft.back
		}
		report(b, detect, back)
	})
}

func report(b *testing.B, detect, back time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(detect.Milliseconds())/n, "detect-ms")
	b.ReportMetric(float64(back.Milliseconds())/n, "back-ms")
	b.ReportMetric(0, "ns/op")
}

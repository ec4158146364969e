package sip

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// cpuTime is this process's user+system CPU so far, and the system part.
func cpuTime(b *testing.B) (all, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkSIPCallers measures what 100 callers on hold cost: the CPU of
// the process (server, hub feed) with 100 calls streaming, less the same
// process with none, per caller and in all, as a share of one core; and
// the timing of one caller's packets against the 20 ms grid. Each
// iteration is one second of streaming: run with -benchtime 5x or more.
func BenchmarkSIPCallers(b *testing.B) {
	const calls = 100
	// sipgo's transport layer warns through its package-wide logger
	// ("UDP ref went negative on try close") as the test callers hang
	// up; on stderr those lines split the result line make bench reads.
	prev := sip.DefaultLogger()
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	b.Cleanup(func() { sip.SetDefaultLogger(prev) })
	srv := startServer(b, 5170, func(o *Options) { o.MaxCalls = calls; o.RTPTimeout = -1 })
	window := func(n int) (cpu, sys, wall time.Duration) {
		c0, s0 := cpuTime(b)
		t0 := time.Now()
		for range n {
			time.Sleep(time.Second)
		}
		c1, s1 := cpuTime(b)
		return c1 - c0, s1 - s0, time.Since(t0)
	}
	n := max(b.N, 1)
	baseCPU, _, baseWall := window(n)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callers := make([]*caller, calls)
	var wg sync.WaitGroup
	for i := range callers {
		callers[i] = newCallerReading(b, hostIP, i == 0)
		wg.Add(1)
		go func(c *caller) {
			defer wg.Done()
			if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0")); err != nil || code != 200 {
				b.Errorf("INVITE: %d %v", code, err)
			}
		}(callers[i])
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	time.Sleep(500 * time.Millisecond) // past the call set-up's own CPU
	first := len(callers[0].packets())
	var sent0 uint64
	for _, c := range srv.Status().Calls {
		sent0 += c.PacketsSent
	}
	b.ResetTimer()
	cpu, sys, wall := window(n)
	b.StopTimer()

	total := cpu.Seconds() / wall.Seconds()
	base := baseCPU.Seconds() / baseWall.Seconds()
	perCall := (total - base) / calls
	late := callers[0].lateness()[first:]
	b.ReportMetric(100*total, "%core-100calls")
	b.ReportMetric(100*base, "%core-0calls")
	b.ReportMetric(100*perCall, "%core/caller")
	b.ReportMetric(float64(percentile(late, .99))/1e6, "p99-late-ms")
	b.ReportMetric(float64(percentile(late, .5))/1e6, "p50-late-ms")
	var sent uint64
	for _, c := range srv.Status().Calls {
		sent += c.PacketsSent
	}
	b.ReportMetric(float64(sent-sent0)/wall.Seconds()/calls, "pkts/s/caller")
	b.ReportMetric(100*sys.Seconds()/cpu.Seconds(), "%sys")
	for _, c := range callers {
		wg.Add(1)
		go func(c *caller) { defer wg.Done(); c.bye(ctx) }(c)
	}
	wg.Wait()
}

package fleet

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkFleet1000 runs 1,000 agents, each with its own client
// certificate, on one real mosquitto, and measures how long they take to
// connect and how long a group command takes to reach and be answered by
// all of them. Run: go test -run '^$' -bench Fleet1000 -benchtime 5x ./fleet/
func BenchmarkFleet1000(b *testing.B) {
	benchFleet(b, 1000)
}

func benchFleet(b *testing.B, n int) {
	groups := make(map[string][]string, n)
	devs := make([]string, n)
	for i := range n {
		devs[i] = fmt.Sprintf("box-%04d", i)
		groups[devs[i]] = []string{"all"}
	}
	e := newEnv(b, groups)
	type certPair struct{ c, k string }
	certs := make([]certPair, n)
	for i, d := range devs {
		c, k := e.certs(b, d)
		certs[i] = certPair{c, k}
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	agents := make([]*Agent, n)
	start := time.Now()
	for i, d := range devs {
		a, err := NewAgent(AgentOptions{
			BrokerURL: e.broker.URL(), CAFile: e.ca.CAFile, CertFile: certs[i].c, KeyFile: certs[i].k,
			DeviceID: d, Groups: groups[d], Ops: newFakeOps(), Logger: testLogger(b),
			MaxReconnectInterval: 2 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		agents[i] = a
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(ctx) }()
	}
	b.Cleanup(func() { cancel(); wg.Wait() })
	deadline := time.Now().Add(120 * time.Second)
	for {
		up := 0
		for _, a := range agents {
			if a.Connected() {
				up++
			}
		}
		if up == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d agents connected after 120s", up, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	connect := time.Since(start)

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heapPerAgent := float64(after.HeapInuse-before.HeapInuse) / float64(n) / 1024
	goroutinesPerAgent := float64(runtime.NumGoroutine()-g0) / float64(n)
	rss, err := e.broker.RSSKiB()
	if err != nil {
		b.Fatal(err)
	}

	op := e.operator(b)
	b.ResetTimer()
	var worst time.Duration
	for b.Loop() {
		t0 := time.Now()
		sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := op.Send(sctx, Target{Group: "all"}, Command{Op: OpNext}, devs)
		scancel()
		if err != nil {
			b.Fatal(err)
		}
		if len(r) != n {
			var missing []string
			for _, d := range devs {
				if _, ok := r[d]; !ok {
					missing = append(missing, d)
				}
			}
			b.Fatalf("%d of %d boxes answered the group command; missing %v", len(r), n, missing)
		}
		for d, rep := range r {
			if !rep.OK {
				b.Fatalf("%s: %+v", d, rep)
			}
		}
		worst = max(worst, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(connect.Seconds(), "connect-all-s")
	b.ReportMetric(worst.Seconds()*1000, "worst-group-cmd-ms")
	b.ReportMetric(float64(rss)/1024, "broker-RSS-MiB")
	b.ReportMetric(heapPerAgent, "agent-heap-KiB/agent")
	b.ReportMetric(goroutinesPerAgent, "goroutines/agent")
}

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkStatus1000 is `mohctl status` over 1,000 boxes, each its own
// in-process HTTP server on loopback (status and events per box).
// Target: under 5 s. Run: go test -run '^$' -bench Status1000 ./cmd/mohctl/
func BenchmarkStatus1000(b *testing.B) {
	groups := make(map[string][]string, 1000)
	for i := range 1000 {
		groups[fmt.Sprintf("box-%04d", i)] = []string{"all"}
	}
	fx := newFleet(b, groups)
	var worst time.Duration
	for b.Loop() {
		t0 := time.Now()
		code, out, errOut := runCLI(b, "--inventory", fx.inv, "status")
		worst = max(worst, time.Since(t0))
		if code != exitOK {
			b.Fatalf("exit %d: %s", code, errOut)
		}
		if n := strings.Count(out, "\n"); n != 1001 {
			b.Fatalf("%d lines", n)
		}
	}
	b.ReportMetric(worst.Seconds(), "worst-s")
	if worst > 5*time.Second {
		b.Errorf("status over 1,000 boxes took %v, target 5 s", worst)
	}
}

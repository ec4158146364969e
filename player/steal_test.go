package player

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// stealWatch samples, every 100 ms, the CPU time the hypervisor gave
// other guests (steal in /proc/stat, per CPU): a virtual machine whose
// CPUs are all taken away for longer than the player's lead underruns
// whatever the guest's priorities, and the contention test tells those
// underruns apart from the player's own.
type stealWatch struct {
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []stealSample
}

type stealSample struct {
	at    time.Time
	ticks []float64 // per CPU, USER_HZ ticks since boot
}

func watchSteal() *stealWatch {
	w := &stealWatch{quit: make(chan struct{}), done: make(chan struct{})}
	w.sample()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				w.sample()
			case <-w.quit:
				w.sample()
				return
			}
		}
	}()
	return w
}

func (w *stealWatch) sample() {
	s := stealSample{at: time.Now(), ticks: stealPerCPU()}
	w.mu.Lock()
	w.samples = append(w.samples, s)
	w.mu.Unlock()
}

func (w *stealWatch) stop() {
	close(w.quit)
	<-w.done
}

// total is the steal of all CPUs over the watch, and the most of it in
// one sample.
func (w *stealWatch) total() (sum, worst time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 1; i < len(w.samples); i++ {
		d := 0.0
		for c := range w.samples[i].ticks {
			d += w.delta(i, c)
		}
		sum += ticksToDuration(d)
		worst = max(worst, ticksToDuration(d))
	}
	return sum, worst
}

// allCPUs is how long the hypervisor held every CPU in the samples that
// overlap [from, to]: the least steal of any one CPU over them.
func (w *stealWatch) allCPUs(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) < 2 {
		return 0
	}
	least := -1.0
	for c := range w.samples[0].ticks {
		d := 0.0
		for i := 1; i < len(w.samples); i++ {
			if w.samples[i].at.After(from) && w.samples[i-1].at.Before(to) {
				d += w.delta(i, c)
			}
		}
		if least < 0 || d < least {
			least = d
		}
	}
	return ticksToDuration(max(least, 0))
}

func (w *stealWatch) delta(i, cpu int) float64 {
	a, b := w.samples[i-1].ticks, w.samples[i].ticks
	if cpu >= len(a) || cpu >= len(b) {
		return 0
	}
	return b[cpu] - a[cpu]
}

// stealPerCPU reads the steal column of each cpuN line of /proc/stat.
func stealPerCPU() []float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	var out []float64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line) // cpuN user nice system idle iowait irq softirq steal ...
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		v, _ := strconv.ParseFloat(f[8], 64)
		out = append(out, v)
	}
	return out
}

func ticksToDuration(ticks float64) time.Duration {
	return time.Duration(ticks * float64(time.Second) / 100) // USER_HZ
}

func TestStealWatchAllCPUs(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := &stealWatch{samples: []stealSample{
		{at(0), []float64{0, 0}},
		{at(100), []float64{10, 5}}, // cpu0 stolen 100 ms, cpu1 50 ms
		{at(200), []float64{20, 15}},
		{at(300), []float64{20, 25}}, // cpu0 free again
	}}
	for _, c := range []struct {
		from, to int
		want     time.Duration
	}{
		{10, 90, 50 * time.Millisecond},   // the first sample only: the least of 100 and 50
		{10, 190, 150 * time.Millisecond}, // two samples: 200 and 150
		{210, 290, 0},                     // cpu0 ran
		{400, 500, 0},                     // after the watch
	} {
		if got := w.allCPUs(at(c.from), at(c.to)); got != c.want {
			t.Errorf("allCPUs(%d..%d ms) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	if sum, worst := w.total(); sum != 450*time.Millisecond || worst != 200*time.Millisecond {
		t.Errorf("total = %v, %v; want 450ms, 200ms", sum, worst)
	}
	if got := stealPerCPU(); len(got) == 0 {
		t.Error("no cpuN lines with a steal column in /proc/stat")
	}
}

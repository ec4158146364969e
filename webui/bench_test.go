package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// cardSink models a sound card for the bench: it takes PCM in real time
// with a small buffer and counts underruns — a write that arrives after
// the buffer has already run dry, which a real card would play as a click
// or a gap.
type cardSink struct {
	buffer time.Duration

	mu        sync.Mutex
	started   bool
	start     time.Time     // real time at which the written audio began
	written   time.Duration // audio written since start
	underruns int
	minLevel  time.Duration // lowest buffer level seen at a write
	closed    chan struct{}
	closeOnce sync.Once
}

func newCardSink(buffer time.Duration) *cardSink {
	return &cardSink{buffer: buffer, minLevel: buffer, closed: make(chan struct{})}
}

func (c *cardSink) Write(p []byte) (int, error) {
	d := time.Duration(len(p)/player.BytesPerFrame) * time.Second / player.SampleRate
	c.mu.Lock()
	now := time.Now()
	if !c.started {
		c.started, c.start = true, now
	}
	level := c.written - now.Sub(c.start)
	switch {
	case c.written > 0 && level < 0:
		// Ran dry: the card played silence; it restarts from now.
		c.underruns++
		c.start, c.written = now, 0
	case c.written > 0:
		c.minLevel = min(c.minLevel, level)
	}
	c.written += d
	wait := c.written - now.Sub(c.start) - c.buffer
	c.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.closed:
			return 0, player.ErrSinkClosed
		}
	}
	return len(p), nil
}

func (c *cardSink) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *cardSink) stats() (underruns int, minLevel time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.underruns, c.minLevel
}

// benchStatus runs clients concurrent clients against GET /api/v1/status
// on a real server while the direct backend plays into a cardSink, and
// reports latency percentiles and underruns. interval 0 means each client
// asks again as soon as it has its answer (a closed loop, the worst case);
// otherwise each client polls at that interval, as the page does.
func benchStatus(b *testing.B, clients int, interval time.Duration) {
	lib := openLibrary(b, nil)
	f, err := os.Open(makeMP3(b, b.TempDir(), "bench.mp3", 8, 440))
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := lib.Ingest(context.Background(), "bench.mp3", f, nil); err != nil {
		b.Fatal(err)
	}
	f.Close()

	sink := newCardSink(100 * time.Millisecond)
	p, _ := directPlayer(b, player.DirectOptions{OpenSink: func(context.Context) (player.Sink, error) { return sink, nil }})
	tr := lib.Tracks()[0]
	p.SetPlaylist([]player.Track{{ID: tr.ID, Name: tr.Name, Path: tr.Path}})
	runPlayer(b, p)

	dir := b.TempDir()
	s, err := New(Options{Player: p, Library: lib, DataDir: dir, Logger: testLogger(b), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := CreateToken(dir, "read", "bench")
	if err != nil {
		b.Fatal(err)
	}
	ln := serveLoopback(b, s)
	url := "http://" + ln.Addr().String() + "/api/v1/status"

	// Wait until audio flows before measuring.
	deadline := time.Now().Add(10 * time.Second)
	for p.Status().Frames == 0 {
		if time.Now().After(deadline) {
			b.Fatal("audio never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	u0, _ := sink.stats()
	frames0, t0 := p.Status().Frames, time.Now()

	// The clients run in a separate process, as they would on other
	// machines: in-process they would share mohd's Go scheduler and make
	// it look worse than it is.
	cpu0 := selfCPU()
	b.ResetTimer()
	var res loadResult
	if clients > 0 {
		res, err = runLoadProcess(url, tok, clients, b.N, interval)
	} else {
		// The baseline: the same playback with no web load, so underruns
		// caused by the rest of the machine are told apart.
		time.Sleep(time.Duration(b.N) * time.Millisecond)
		res.Seconds = time.Since(t0).Seconds()
	}
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(t0)
	serverCPU := selfCPU() - cpu0
	frames := p.Status().Frames - frames0
	u1, minLevel := sink.stats()
	pct := func(q float64) float64 { return res.percentile(q) }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(res.Count)/res.Seconds, "req/s")
	b.ReportMetric(float64(u1-u0), "underruns")
	b.ReportMetric(float64(minLevel)/1e6, "min-buffer-ms")
	b.ReportMetric(float64(frames)/player.SampleRate/elapsed.Seconds(), "audio-x-realtime")
	b.ReportMetric(float64(res.Failed), "failed")
	if res.Count > 0 {
		// mohd's own CPU per request (player included), and the share of
		// the two cores it used; the rest went to the clients.
		b.ReportMetric(float64(serverCPU.Microseconds())/float64(res.Count), "server-cpu-us/req")
		b.ReportMetric(serverCPU.Seconds()/res.Seconds, "server-cores")
		b.ReportMetric(res.CPUSeconds/res.Seconds, "client-cores")
	}
	if res.Failed > 0 {
		b.Errorf("%d requests failed", res.Failed)
	}
	if u1-u0 > 0 {
		b.Logf("%d output underruns while serving %d clients", u1-u0, clients)
	}
	b.Logf("%d clients, interval %v: %d requests in %v, p50 %.2f ms, p99 %.2f ms, max %.2f ms; underruns %d, min buffer %v, audio %.3fx real time",
		clients, interval, res.Count, elapsed.Round(time.Millisecond), pct(0.5), pct(0.99), pct(1), u1-u0, minLevel, float64(frames)/player.SampleRate/elapsed.Seconds())
}

// BenchmarkStatus200 is make bench's web load test: 200 clients asking for
// the status back to back while the player plays.
//
//	go test ./webui -run '^$' -bench 'Status200|PlaybackBaseline' -benchtime 20000x
func BenchmarkStatus200(b *testing.B) { benchStatus(b, 200, 0) }

// BenchmarkPlaybackBaseline plays with no web load for b.N milliseconds,
// to tell underruns caused by the web load from those caused by the rest
// of the machine.
func BenchmarkPlaybackBaseline(b *testing.B) { benchStatus(b, 0, 0) }

// BenchmarkStatus200Pages is 200 open admin pages, each polling the
// status four times a second.
func BenchmarkStatus200Pages(b *testing.B) { benchStatus(b, 200, 250*time.Millisecond) }

// loadResult is what the client process reports.
type loadResult struct {
	Count   int       `json:"count"`
	Failed  int       `json:"failed"`
	Seconds float64   `json:"seconds"`
	Sorted  []float64 `json:"sorted_ms"` // every latency, ascending
	// CPUSeconds is the load process's own CPU time.
	CPUSeconds float64 `json:"cpu_seconds"`
}

func (r loadResult) percentile(q float64) float64 {
	if len(r.Sorted) == 0 {
		return 0
	}
	return r.Sorted[min(len(r.Sorted)-1, int(q*float64(len(r.Sorted))))]
}

const loadMarker = "MOHLOAD "

// runLoadProcess re-runs this test binary as the load generator.
func runLoadProcess(url, tok string, clients, n int, interval time.Duration) (loadResult, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClientProcess$", "-test.bench=^$", "-test.v")
	cmd.Env = append(os.Environ(),
		"MOH_LOAD_URL="+url, "MOH_LOAD_TOKEN="+tok,
		"MOH_LOAD_CLIENTS="+strconv.Itoa(clients), "MOH_LOAD_N="+strconv.Itoa(n),
		"MOH_LOAD_INTERVAL="+interval.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("load process: %w\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), loadMarker); ok {
			var r loadResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return loadResult{}, fmt.Errorf("load process result: %w", err)
			}
			return r, nil
		}
	}
	return loadResult{}, fmt.Errorf("load process printed no result:\n%s", out)
}

// TestLoadClientProcess is the load generator of the status benchmarks; it
// does nothing unless started by runLoadProcess.
func TestLoadClientProcess(t *testing.T) {
	url := os.Getenv("MOH_LOAD_URL")
	if url == "" {
		t.Skip("only run by the status benchmarks")
	}
	clients, _ := strconv.Atoi(os.Getenv("MOH_LOAD_CLIENTS"))
	n, _ := strconv.Atoi(os.Getenv("MOH_LOAD_N"))
	interval, _ := time.ParseDuration(os.Getenv("MOH_LOAD_INTERVAL"))
	tok := os.Getenv("MOH_LOAD_TOKEN")
	// Each client is a host of its own (127.0.1.N): the box takes at most
	// 32 connections from one address (Options.MaxConnsPerAddr), and 200 pages
	// are 200 browsers, not one.
	clientFor := func(i int) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%250))}}
		tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	var next, failed atomic.Int64
	lat := make([][]time.Duration, clients)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		client := clientFor(i)
		go func() {
			defer wg.Done()
			defer client.CloseIdleConnections()
			var tick <-chan time.Time
			if interval > 0 {
				// Spread the clients over the interval, as independent pages are.
				time.Sleep(time.Duration(i) * interval / time.Duration(clients))
				tk := time.NewTicker(interval)
				defer tk.Stop()
				tick = tk.C
			}
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				lat[i] = append(lat[i], time.Since(t0))
				if tick != nil {
					<-tick
				}
			}
		}()
	}
	wg.Wait()
	r := loadResult{Failed: int(failed.Load()), Seconds: time.Since(start).Seconds(), CPUSeconds: selfCPU().Seconds()}
	for _, l := range lat {
		for _, d := range l {
			r.Sorted = append(r.Sorted, float64(d)/1e6)
		}
	}
	slices.Sort(r.Sorted)
	r.Count = len(r.Sorted)
	b, _ := json.Marshal(r)
	fmt.Println(loadMarker + string(b))
}

// selfCPU is this process's user plus system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package player

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/prio"
)

// The contention test plays the built-in track for a while in a child
// process (so its CPU hogs and its timing cannot disturb the other tests
// of this package) while two busy loops at normal priority saturate both
// cores and an ingest-sized sox | lame job runs at ingest priority. The
// child runs at the priority mohd's unit gives it and counts, in what
// reaches the output, underruns (audio handed over after a sound card
// with the pacer's buffer would have needed it) and gaps (samples
// missing, repeated or changed). Not a timing assertion: any underrun or
// gap fails it, however fast the machine.
//
// MOH_CONTENTION_SECONDS sets the length (default 60; make bench runs 600).
const (
	contentionChildEnv   = "MOH_CONTENTION_CHILD"
	contentionSecondsEnv = "MOH_CONTENTION_SECONDS"
	contentionNiceEnv    = "MOH_CONTENTION_NICE" // overrides the unit's Nice=
	contentionUnit       = "../image/rootfs/etc/systemd/system/mohd.service"
)

// underrun is one write that came after the card needed it.
type underrun struct {
	Audio  float64 `json:"audio_s"` // seconds of audio before it
	LateMS float64 `json:"late_ms"` // how long after the card needed it
	Wall   int64   `json:"wall_ns"` // when it came, Unix ns
}

func (u underrun) String() string {
	return fmt.Sprintf("at %.1f s of audio, %.0f ms late", u.Audio, u.LateMS)
}

// maxUnderrunsListed bounds the child's list; a run with more underruns
// than that fails whatever the hypervisor did.
const maxUnderrunsListed = 100

// contentionResult is what the child reports.
type contentionResult struct {
	Seconds    float64 `json:"seconds"`
	Underruns  int     `json:"underruns"`
	Gaps       int     `json:"gaps"`
	MinSlackMS float64 `json:"min_slack_ms"` // least lead over the card's need, once built
	// Close counts writes that came with less than half the lead left:
	// the run's close calls, which show how near it came to an underrun.
	Close          int     `json:"close_calls"`
	AllocsPerSec   float64 `json:"allocs_per_second"`
	SteadyAllocsPS float64 `json:"steady_allocs_per_second"` // after the first pass
	Cached         bool    `json:"cached"`
	// UnderrunAt lists the underruns (the first maxUnderrunsListed).
	UnderrunAt []underrun `json:"underrun_at,omitempty"`
}

func TestPlaybackUnderContention(t *testing.T) {
	if os.Getenv(contentionChildEnv) != "" {
		contentionChild(t)
		return
	}
	if raceOn {
		// Underruns of a race-instrumented decoder say nothing about the
		// box; `make test-contention` and make bench run it without -race,
		// alone on the machine.
		t.Skip("measured without the race detector: make test-contention")
	}
	secs := 60
	if v := os.Getenv(contentionSecondsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 {
			t.Fatalf("%s=%q: want seconds >= 5", contentionSecondsEnv, v)
		}
		secs = n
	}
	nice := unitNice(t)
	if v := os.Getenv(contentionNiceEnv); v != "" {
		nice, _ = strconv.Atoi(v) // to measure what the unit's value buys
	}
	needMP3Tools(t, "sox", "lame")

	// Two busy loops at normal priority: both cores saturated.
	var hogs []*exec.Cmd
	for range 2 {
		h := exec.Command("/bin/sh", "-c", "while :; do :; done")
		h.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, h)
	}
	// An ingest: resample and encode two hours of audio, at the priority
	// the ingest gives its tools, over and over until the test ends.
	out := filepath.Join(t.TempDir(), "ingest.mp3")
	ingest := exec.Command("/bin/sh", "-c", `while :; do sox -V1 -n -r 48000 -c 2 -b 16 -t raw - synth 7200 pinknoise | sox -V1 -t raw -r 48000 -e signed -b 16 -c 2 - -t raw -r 44100 - rate -v 44100 | lame --silent -r -s 44.1 --bitwidth 16 --signed --little-endian -V 2 - "$0"; done`, out)
	ingest.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := ingest.Start(); err != nil {
		t.Fatal(err)
	}
	prio.Process(ingest.Process.Pid)
	defer func() {
		for _, c := range append(hogs, ingest) {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		}
	}()

	// The unit's Nice=, set as systemd sets it: before the program
	// starts, so every thread of the Go runtime has it.
	child := exec.Command("nice", "-n", strconv.Itoa(nice), os.Args[0], "-test.run=^TestPlaybackUnderContention$", "-test.count=1", "-test.v")
	child.Env = append(os.Environ(), contentionChildEnv+"=1", contentionSecondsEnv+"="+strconv.Itoa(secs))
	var stdout bytes.Buffer
	child.Stdout = &stdout
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	steal := watchSteal()
	err := child.Wait()
	steal.stop()
	stolen, worst := steal.total()
	hogCPU := 0.0
	for _, h := range hogs {
		hogCPU += procCPUSeconds(h.Process.Pid)
	}
	var res contentionResult
	found := false
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "CONTENTION "); ok {
			found = json.Unmarshal([]byte(rest), &res) == nil
		}
	}
	if err != nil || !found {
		if nice < 0 && os.Geteuid() != 0 {
			t.Fatalf("the unit's Nice=%d needs root (make test runs as root): %v", nice, err)
		}
		t.Fatalf("player child: %v, result found: %v\n%s", err, found, stdout.String())
	}
	wall := time.Since(start).Seconds()
	t.Logf("RESULT contention: %.0f s of playback at nice %d, 2 busy loops (%.0f%% of the %.0f s on both cores) + ingest: %d underruns, %d gaps; least slack %.1f ms of %v, %d writes with under half of it; %.2f allocations/s (%.2f after the first pass); played from the PCM cache: %v; CPU time the hypervisor took from this machine: %v, at most %v of a 100 ms window",
		res.Seconds, nice, 100*hogCPU/(2*wall), wall, res.Underruns, res.Gaps, res.MinSlackMS, DefaultPacerAhead, res.Close, res.AllocsPerSec, res.SteadyAllocsPS, res.Cached, stolen, worst)
	// An underrun is the player's unless, while it waited, the hypervisor
	// held every CPU of this virtual machine for longer than the write
	// came late: then no guest could have written in time, and a real box
	// has no hypervisor. Each such one is said, never silently passed.
	ours := res.Underruns
	if res.Underruns <= maxUnderrunsListed {
		for _, u := range res.UnderrunAt {
			came := time.Unix(0, u.Wall)
			late := time.Duration(u.LateMS * 1e6)
			// From when the writer could first have written the block
			// (the lead before the card needed it) to when it did.
			if frozen := steal.allCPUs(came.Add(-late-DefaultPacerAhead), came); frozen > late {
				ours--
				t.Logf("underrun %v: the hypervisor held every CPU for %v of that wait (steal in /proc/stat): the machine's, not the player's", u, frozen)
			}
		}
	}
	if ours != 0 || res.Gaps != 0 {
		t.Errorf("%d underruns (%d of them while the guest had a CPU) and %d gaps under contention, want none; underruns: %v", res.Underruns, ours, res.Gaps, res.UnderrunAt)
	}
	if res.Seconds < float64(secs)-1 {
		t.Errorf("played %.1f s, want %d", res.Seconds, secs)
	}
	if !res.Cached {
		t.Error("the PCM cache was not built within the run")
	}
}

// unitNice is the Nice= of the shipped unit (0 if it sets none).
func unitNice(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(contentionUnit)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Nice="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("unit: Nice=%q", v)
			}
			return n
		}
	}
	return 0
}

// procCPUSeconds is the user+system CPU of a live process.
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ
}

// contentionChild plays the built-in track into a card model over the
// real paced null sink and prints the counts.
func contentionChild(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv(contentionSecondsEnv))
	dir := t.TempDir()
	tr, err := EnsureFallback(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := decodeGapless(t, tr.Path)
	cache := NewPCMCache(PCMCacheOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Dir: filepath.Join(dir, "pcm-cache")})
	// The track's cache file first, as it is once a track has played
	// through once: what is measured is steady playback. (The first
	// pass of a new track decodes live; under the race detector go-mp3
	// is too slow for real time on a loaded 2-core box.)
	if err := cache.ensure(tr.Path); err != nil {
		t.Fatal(err)
	}
	card := &cardModel{want: want, minSlack: time.Hour, allocs: []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}}
	d := NewDirect(DirectOptions{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenSink: func(context.Context) (Sink, error) { card.sink = NewNullSink(nil); return card, nil },
		PCMCache: cache,
	})
	d.SetVolume(100) // unity: bit-exact, so every sample can be checked
	d.SetPlaylist([]Track{tr})
	d.Play()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(time.Duration(secs) * time.Second)
	cancel()
	<-done
	_, cerr := os.Stat(cache.pathFor(tr.Path))
	r := card.result()
	r.Cached = cerr == nil
	b, _ := json.Marshal(r)
	fmt.Printf("CONTENTION %s\n", b)
}

// cardModel stands for a sound card in front of the paced null sink: it
// plays from the first write on at exactly 44.1 kHz, with as much buffer
// as the pacer gives the writer, and notes every write that comes after
// the card needed its first sample (an underrun; the card then starts
// again, as ALSA does). It also checks every sample against the track.
type cardModel struct {
	sink *NullSink
	want []byte

	mu       sync.Mutex
	started  bool
	t0       time.Time // when the card plays byte 0 of the timeline
	bytes    int64     // bytes since t0
	pos      int       // offset in want of the next byte
	under    int
	at       []underrun
	gaps     int
	built    bool // the writer has its whole lead (minSlack counts from then)
	minSlack time.Duration
	close    int
	total    int64
	first    time.Time

	allocs      []metrics.Sample
	allocs0     uint64
	steady0     uint64
	steadyAt    time.Time
	steadyBytes int64
}

func (c *cardModel) Write(p []byte) (int, error) {
	c.mu.Lock()
	now := time.Now()
	if !c.started {
		c.started, c.t0, c.first = true, now, now
		metrics.Read(c.allocs)
		c.allocs0 = c.allocs[0].Value.Uint64()
	}
	need := c.t0.Add(time.Duration(c.bytes * int64(time.Second) / pcmByteRate))
	if slack := need.Sub(now); slack < 0 {
		c.under++
		if len(c.at) < maxUnderrunsListed {
			c.at = append(c.at, underrun{Audio: float64(c.total) / pcmByteRate, LateMS: float64(-slack) / 1e6, Wall: now.UnixNano()})
		}
		c.t0, c.bytes, c.built = now, 0, false // the card restarts from here
	} else if c.built {
		c.minSlack = min(c.minSlack, slack)
		if slack < c.sink.w.pacer.Ahead()/2 {
			c.close++
		}
	} else if slack >= c.sink.w.pacer.Ahead()-2*time.Duration(len(p))*time.Second/pcmByteRate {
		// The writer starts with one block of lead and takes the rest
		// at full speed; slack is measured from when it has it all.
		c.built = true
	}
	c.bytes += int64(len(p))
	c.total += int64(len(p))
	// Gaps: every sample must be the next one of the loop.
	for off := 0; off < len(p); {
		n := min(len(p)-off, len(c.want)-c.pos)
		if !bytes.Equal(p[off:off+n], c.want[c.pos:c.pos+n]) {
			c.gaps++
		}
		off += n
		c.pos = (c.pos + n) % len(c.want)
	}
	if c.steadyAt.IsZero() && c.total >= int64(len(c.want)) {
		// From the second pass on: every buffer and timer exists.
		metrics.Read(c.allocs)
		c.steady0, c.steadyAt, c.steadyBytes = c.allocs[0].Value.Uint64(), now, c.total
	}
	s := c.sink
	c.mu.Unlock()
	return s.Write(p)
}

func (c *cardModel) Close() error { return c.sink.Close() }

func (c *cardModel) result() contentionResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	metrics.Read(c.allocs)
	now := c.allocs[0].Value.Uint64()
	secs := float64(c.total) / pcmByteRate
	r := contentionResult{Seconds: secs, Underruns: c.under, Gaps: c.gaps, MinSlackMS: float64(c.minSlack) / 1e6, Close: c.close, UnderrunAt: c.at}
	if secs > 0 {
		r.AllocsPerSec = float64(now-c.allocs0) / secs
	}
	if steady := float64(c.total-c.steadyBytes) / pcmByteRate; !c.steadyAt.IsZero() && steady > 0 {
		r.SteadyAllocsPS = float64(now-c.steady0) / steady
	}
	return r
}

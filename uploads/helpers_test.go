package uploads

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testLib opens a library in a fresh temp dir; edit adjusts the options.
func testLib(t testing.TB, edit func(*Options)) *Library {
	t.Helper()
	dir := t.TempDir()
	o := Options{DataDir: dir, Logger: testLogger(t), PollInterval: 100 * time.Millisecond, SettleTime: time.Second}
	if edit != nil {
		edit(&o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// decodeMP3 decodes with mpg123 (gapless) to interleaved stereo float.
func decodeMP3(t testing.TB, path string) []float32 {
	t.Helper()
	cmd := exec.Command("mpg123", "-q", "--gapless", "--stereo", "-e", "f32", "-s", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var x []float32
	if err := readFrames(out, func(f []float32) { x = append(x, f...) }); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mpg123 %s: %v %s", path, err, stderr.String())
	}
	return x
}

// zeroCrossingHz estimates the frequency of a sine in channel 0.
func zeroCrossingHz(x []float32, ch, rate int) float64 {
	n := len(x) / ch
	// Skip the ends: fades and priming must not bias the count.
	a, b := n/10, n-n/10
	first, last, count := -1, -1, 0
	for i := a + 1; i < b; i++ {
		if x[(i-1)*ch] < 0 && x[i*ch] >= 0 {
			if first < 0 {
				first = i
			}
			last = i
			count++
		}
	}
	if count < 2 {
		return 0
	}
	return float64(count-1) * float64(rate) / float64(last-first)
}

// seamHoles loops x three times and returns the lowest RMS of any 5 ms
// window around the two seams relative to the RMS of the whole signal:
// close to 1 for a gapless loop of a steady tone, near 0 for a hole.
func seamHoles(x []float32, ch, rate int) float64 {
	loop := append(append(append([]float32(nil), x...), x...), x...)
	var all float64
	for _, v := range x {
		all += float64(v) * float64(v)
	}
	all = math.Sqrt(all / float64(len(x)))
	win := rate / 200
	worst := math.Inf(1)
	for s := 1; s <= 2; s++ {
		seam := s * len(x) / ch
		for start := seam - 10*win; start < seam+10*win; start += win / 4 {
			var e float64
			for i := start; i < start+win; i++ {
				v := float64(loop[i*ch])
				e += v * v
			}
			worst = min(worst, math.Sqrt(e/float64(win))/all)
		}
	}
	return worst
}

// sineWAV writes a 441 Hz sine at level dBFS: 2 s holds exactly 882
// periods at every rate, so the file loops without a discontinuity.
func sineWAV(t testing.TB, dir string, rate, ch int, dbfs float64) string {
	p := filepath.Join(dir, "sine.wav")
	writeWAV16(t, p, rate, ch, sine(rate, ch, 2, 441, dbfs))
	return p
}

func ingestFile(t testing.TB, l *Library, path string) (Track, bool, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return l.Ingest(context.Background(), filepath.Base(path), f, nil)
}

// testLogger sends the library's log to the test log (shown with -v or
// on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

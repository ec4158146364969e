package uploads

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mohproject/moh/player"
)

// TestLAMETagCRC checks mp3.LAMECRC against the CRC that lame itself writes into
// a freshly encoded file (readLAMETag refuses a tag whose CRC it cannot
// reproduce), and that a patched tag reads back with the new values and a
// valid CRC.
func TestLAMETagCRC(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"-V", "2"}, {"--cbr", "-b", "128"}, {"-m", "m", "-b", "64"}} {
		out := filepath.Join(dir, "x.mp3")
		run(t, "lame", append(append([]string{"--silent"}, args...), sineWAV(t, dir, 44100, 2, -20), out)...)
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := readLAMETag(f)
		f.Close()
		if err != nil {
			t.Fatalf("lame %v: %v", args, err)
		}
		d0, p0 := tag.delayPadding()
		if err := patchLAMETag(out, 1000, 2000); err != nil {
			t.Fatal(err)
		}
		f, _ = os.Open(out)
		tag, err = readLAMETag(f)
		f.Close()
		if err != nil {
			t.Fatalf("patched tag: %v", err)
		}
		if d, p := tag.delayPadding(); d != d0+1000 || p != p0+2000 {
			t.Errorf("lame %v: patched delay/padding %d/%d, want %d/%d", args, d, p, d0+1000, p0+2000)
		}
		if err := patchLAMETag(out, 4095, 0); !errors.Is(err, errTagFull) {
			t.Errorf("overflowing delay: err %v, want errTagFull", err)
		}
	}
	// A corrupted tag must not be patched.
	out := filepath.Join(dir, "x.mp3")
	b, _ := os.ReadFile(out)
	b[170] ^= 1
	os.WriteFile(out, b, 0o644)
	if err := patchLAMETag(out, 1, 1); err == nil {
		t.Error("patched a tag whose CRC is wrong")
	}
}

func TestPrimeFrames(t *testing.T) {
	for _, c := range []struct{ rate, in, out int }{
		{44100, 1152, 1152}, {48000, 1280, 1176}, {22050, 576, 1152}, {8000, 240, 1323}, {96000, 2560, 1176}, {11025, 288, 1152}, {32000, 960, 1323},
	} {
		in, out := primeFrames(c.rate, 1152)
		if in != c.in || out != c.out || int64(in)*44100 != int64(out)*int64(c.rate) {
			t.Errorf("rate %d: %d→%d, want %d→%d", c.rate, in, out, c.in, c.out)
		}
	}
	if in, out := primeFrames(44100, 4000); out > maxTagField-lamePadMax || in != out {
		t.Errorf("target 4000: %d→%d, want at most %d", in, out, maxTagField-lamePadMax)
	}
	if in, out := primeFrames(44099, 1152); in != 0 || out != 0 { // no whole-sample alignment fits
		t.Errorf("rate 44099: %d→%d, want none", in, out)
	}
}

// decodeGoMP3 decodes a rendition with the direct player's decoder.
func decodeGoMP3(t testing.TB, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	g, err := player.OpenGapless(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(b)/2)
	for i := range x {
		x[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:]))) / 32768
	}
	return x
}

// seamError loops the decoded sine (channel 0 of stereo x, freq Hz at 44.1
// kHz) loops times, fits one sine to the whole, and returns the peak error
// in 16-bit LSB within win samples of a seam and elsewhere.
func seamError(x []float32, freq float64, loops, win int) (seam, interior float64) {
	n := len(x) / 2
	w := 2 * math.Pi * freq / 44100
	var ss, sc, cc, ys, yc float64
	for i := 0; i < n*loops; i++ {
		s, c := math.Sin(w*float64(i)), math.Cos(w*float64(i))
		y := float64(x[(i%n)*2])
		ss, sc, cc, ys, yc = ss+s*s, sc+s*c, cc+c*c, ys+y*s, yc+y*c
	}
	det := ss*cc - sc*sc
	a, b := (ys*cc-yc*sc)/det, (yc*ss-ys*sc)/det
	for i := 0; i < n*loops; i++ {
		e := math.Abs(float64(x[(i%n)*2])-a*math.Sin(w*float64(i))-b*math.Cos(w*float64(i))) * 32768
		if d := i % n; d < win || d >= n-win {
			seam = max(seam, e)
		} else {
			interior = max(interior, e)
		}
	}
	return seam, interior
}

// TestLoopPrimeSeam ingests sines with a whole number of periods, with and
// without loop priming, decodes the renditions with mpg123 and with the
// direct player's go-mp3 path, and compares the error at the loop seam
// with the error inside the track. Without priming the encoder's start and
// end transients make the seam several times worse; with it the seam is
// like any other place in the track.
func TestLoopPrimeSeam(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes several renditions")
	}
	const win = 1152 // one frame either side of the seam
	for _, c := range []struct {
		name string
		rate int
		dbfs float64
		mp3  bool // the original is an MPEG-2 MP3 (mpg123 decode, resampled)
		asIs bool // normalising off
	}{
		{"44.1k WAV", 44100, -20, false, false},
		{"48k WAV resampled", 48000, -20, false, false},
		{"22.05k MPEG-2 MP3", 22050, -20, true, false},
		{"44.1k WAV at -1 dBFS not normalised", 44100, -1, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "sine.wav")
			writeWAV16(t, src, c.rate, 2, sine(c.rate, 2, 2, 441, c.dbfs))
			if c.mp3 {
				run(t, "lame", "--silent", "-b", "64", src, filepath.Join(dir, "sine.mp3"))
				src = filepath.Join(dir, "sine.mp3")
			}
			var ratio, seamPeak [2]float64
			for k, prime := range []int{-1, 0} {
				l := testLib(t, func(o *Options) { o.NormaliseOff = c.asIs })
				l.primeOverride = prime
				tr, _, err := ingestFile(t, l, src)
				if err != nil {
					t.Fatal(err)
				}
				checkPrimeTag(t, tr.Path, c.rate, k == 1)
				for _, dec := range []struct {
					name string
					fn   func(testing.TB, string) []float32
				}{{"mpg123", decodeMP3}, {"go-mp3", decodeGoMP3}} {
					x := dec.fn(t, tr.Path)
					if got := len(x) / 2; got != 88200 {
						t.Errorf("%s decodes %d frames, want 88200", dec.name, got)
					}
					seam, in := seamError(x, 441, 10, win)
					t.Logf("priming %-5v %-6s seam peak %6.0f LSB, interior peak %6.0f LSB", k == 1, dec.name, seam, in)
					ratio[k] = max(ratio[k], seam/in)
					seamPeak[k] = max(seamPeak[k], seam)
				}
			}
			if c.mp3 {
				// An MP3 original brings its own encoder's seam
				// transient (this one: 64 LSB at the seam, 3 inside,
				// decoded at 22.05 kHz), which the rendition keeps
				// faithfully; priming must only not add to it.
				// Compare the seam peaks themselves: the interior
				// peak moves by a few LSB between encodings, which
				// would make a ratio test flaky.
				if seamPeak[1] > seamPeak[0]*1.1+2 {
					t.Errorf("priming made the seam worse: %.0f LSB peak, %.0f without", seamPeak[1], seamPeak[0])
				}
				return
			}
			if ratio[1] > 2 {
				t.Errorf("with priming the seam error is %.1f× the interior's, want ≤ 2×", ratio[1])
			}
			if ratio[0] < 2*ratio[1] {
				t.Errorf("without priming the seam is %.1f× the interior, with it %.1f×: the test no longer sees what priming fixes", ratio[0], ratio[1])
			}
		})
	}
}

// checkPrimeTag checks that the rendition's tag hides the loop context
// (delay 576 plus the primed length) exactly when priming was on.
func checkPrimeTag(t *testing.T, path string, rate int, primed bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tag, err := readLAMETag(f)
	if err != nil {
		t.Fatal(err)
	}
	want := 576
	if primed {
		_, out := primeFrames(rate, defaultPrime)
		want += out
	}
	if d, p := tag.delayPadding(); d != want || p < 576 {
		t.Errorf("tag delay %d padding %d, want delay %d", d, p, want)
	}
}

// TestLoopPrimeTrackChange plays two tracks one after the other (a 441 Hz
// and an 882 Hz sine) as a two-track loop A B A B ..., and checks that
// priming each track with its own neighbours does not make the change
// from one track to the other worse: the context the encoder saw is not
// what follows there, but each side is still encoded as music rather than
// against silence.
func TestLoopPrimeTrackChange(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes several renditions")
	}
	dir := t.TempDir()
	srcA, srcB := filepath.Join(dir, "a.wav"), filepath.Join(dir, "b.wav")
	writeWAV16(t, srcA, 44100, 2, sine(44100, 2, 2, 441, -20))
	writeWAV16(t, srcB, 44100, 2, sine(44100, 2, 2, 882, -20))
	var peak [2]float64
	for k, prime := range []int{-1, 0} {
		l := testLib(t, nil)
		l.primeOverride = prime
		ta, _, err := ingestFile(t, l, srcA)
		if err != nil {
			t.Fatal(err)
		}
		tb, _, err := ingestFile(t, l, srcB)
		if err != nil {
			t.Fatal(err)
		}
		a, b := decodeMP3(t, ta.Path), decodeMP3(t, tb.Path)
		// Error of each track against its own fitted sine, at both
		// changes A→B and B→A of the two-track loop.
		ea, eb := sineError(a, 441), sineError(b, 882)
		loop := append(append(ea, eb...), ea...)
		var seam, interior float64
		for i, e := range loop {
			if d := min(abs(i-len(ea)), abs(i-len(ea)-len(eb))); d < 1152 {
				seam = max(seam, e)
			} else if d > 2*1152 {
				interior = max(interior, e)
			}
		}
		t.Logf("priming %-5v A→B and B→A peak %4.0f LSB, interior peak %4.0f LSB", k == 1, seam, interior)
		peak[k] = seam
	}
	if peak[1] > peak[0] {
		t.Errorf("track change with priming %.0f LSB, without %.0f: worse", peak[1], peak[0])
	}
}

// sineError fits a sine of freq Hz to channel 0 of stereo x (44.1 kHz)
// and returns the absolute error per frame in 16-bit LSB.
func sineError(x []float32, freq float64) []float64 {
	n := len(x) / 2
	w := 2 * math.Pi * freq / 44100
	var ss, sc, cc, ys, yc float64
	for i := range n {
		s, c := math.Sin(w*float64(i)), math.Cos(w*float64(i))
		y := float64(x[2*i])
		ss, sc, cc, ys, yc = ss+s*s, sc+s*c, cc+c*c, ys+y*s, yc+y*c
	}
	det := ss*cc - sc*sc
	a, b := (ys*cc-yc*sc)/det, (yc*ss-ys*sc)/det
	e := make([]float64, n)
	for i := range e {
		e[i] = math.Abs(float64(x[2*i])-a*math.Sin(w*float64(i))-b*math.Cos(w*float64(i))) * 32768
	}
	return e
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

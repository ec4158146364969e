package player

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	mp3 "github.com/hajimehoshi/go-mp3"
)

// Test signal: left is a sine, right the cosine of the same tone, so at no
// instant are both channels near zero — any run of frames with both
// channels quiet is a hole, however short.
const (
	testAmp    = 16000.0
	testPeriod = 100 // 441 Hz
	// testTrackFrames is a test track's length: 110 whole periods (0.25
	// s), short so that ten laps decode quickly even under -race.
	testTrackFrames = 110 * testPeriod
	quietLevel      = 1000
)

func testSinePCM(frames, period int, amp float64) []byte {
	b := make([]byte, frames*BytesPerFrame)
	for i := 0; i < frames; i++ {
		ph := 2 * math.Pi * float64(i%period) / float64(period)
		binary.LittleEndian.PutUint16(b[i*4:], uint16(int16(math.Round(amp*math.Sin(ph)))))
		binary.LittleEndian.PutUint16(b[i*4+2:], uint16(int16(math.Round(amp*math.Cos(ph)))))
	}
	return b
}

func needMP3Tools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required for this test (Debian packages lame, sox, mpg123, ffmpeg): %v", tool, err)
		}
	}
}

func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// encoderFiles writes pcm as the encoder's raw input beside the MP3 it
// is to make; it returns both paths.
func encoderFiles(t testing.TB, dir, name string, pcm []byte) (raw, out string) {
	t.Helper()
	raw = filepath.Join(dir, name+".raw")
	if err := os.WriteFile(raw, pcm, 0o644); err != nil {
		t.Fatal(err)
	}
	return raw, filepath.Join(dir, name)
}

// sineTrack is the test sine (testSinePCM) encoded by lame -V2 as name
// in dir: the source PCM and the MP3's path.
func sineTrack(t testing.TB, dir, name string) (src []byte, path string) {
	t.Helper()
	src = testSinePCM(testTrackFrames, testPeriod, testAmp)
	return src, encodeLame(t, dir, name, src, "-V2")
}

// encodeLame encodes s16le stereo 44.1 kHz PCM with lame and extra args.
func encodeLame(t testing.TB, dir, name string, pcm []byte, args ...string) string {
	t.Helper()
	needMP3Tools(t, "lame")
	raw, out := encoderFiles(t, dir, name, pcm)
	a := append([]string{"--quiet", "-r", "-s", "44.1", "--bitwidth", "16", "--signed", "--little-endian"}, args...)
	runTool(t, "lame", append(a, raw, out)...)
	return out
}

// encodeFFmpeg encodes with ffmpeg's libmp3lame, which writes an ID3v2
// tag and an Info tag whose encoder string is "Lavc".
func encodeFFmpeg(t testing.TB, dir, name string, pcm []byte) string {
	t.Helper()
	return encodeFFmpegArgs(t, dir, name, pcm, "-c:a", "libmp3lame", "-b:a", "128k")
}

// encodeFFmpegArgs encodes s16le stereo 44.1 kHz PCM with ffmpeg and the
// given codec arguments.
func encodeFFmpegArgs(t testing.TB, dir, name string, pcm []byte, args ...string) string {
	t.Helper()
	needMP3Tools(t, "ffmpeg")
	raw, out := encoderFiles(t, dir, name, pcm)
	a := append([]string{"-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", "44100", "-ac", "2", "-i", raw}, args...)
	runTool(t, "ffmpeg", append(a, out)...)
	return out
}

func decodeGapless(t testing.TB, path string) []byte {
	t.Helper()
	return decodeFile(t, path, func(data []byte) (io.Reader, error) {
		return OpenGapless(bytes.NewReader(data), int64(len(data)))
	})
}

// decodeGoMP3 is what go-mp3 alone gives.
func decodeGoMP3(t testing.TB, path string) []byte {
	t.Helper()
	return decodeFile(t, path, func(data []byte) (io.Reader, error) {
		return mp3.NewDecoder(io.MultiReader(bytes.NewReader(data))) // no Seeker: no up-front scan
	})
}

// decodeFile is all the PCM the decoder open makes of the file at path.
func decodeFile(t testing.TB, path string, open func(data []byte) (io.Reader, error)) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := open(data)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	b, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return b
}

// decodeRefMPG123 is the reference: a conformant decoder honouring the LAME
// tag. Piped, because mpg123 truncates a regular file it writes to.
func decodeRefMPG123(t testing.TB, path string) []byte {
	t.Helper()
	needMP3Tools(t, "mpg123")
	cmd := exec.Command("mpg123", "-q", "-s", path)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mpg123 %s: %v", path, err)
	}
	return out.Bytes()
}

func pcmAt(pcm []byte, frame, ch int) float64 {
	return float64(int16(binary.LittleEndian.Uint16(pcm[frame*4+ch*2:])))
}

// pcmDiff compares got with want shifted by lag frames (got[i+lag] vs
// want[i]) over their overlap, both channels.
func pcmDiff(got, want []byte, lag int) (rms, peak float64) {
	n := min(len(got)/4-lag, len(want)/4)
	var sum float64
	for i := max(0, -lag); i < n; i++ {
		for ch := 0; ch < 2; ch++ {
			d := pcmAt(got, i+lag, ch) - pcmAt(want, i, ch)
			sum += d * d
			peak = max(peak, math.Abs(d))
		}
	}
	return math.Sqrt(sum / float64(2*n)), peak
}

// pcmDiffScaled is pcmDiff after fitting one gain to got (least squares),
// so that a codec's small level change is not counted as error. It also
// says where the peak error is, in frames.
func pcmDiffScaled(got, want []byte) (gain, rms, peak float64, at int) {
	n := min(len(got), len(want)) / 4
	var gw, ww float64
	for i := 0; i < n; i++ {
		for ch := 0; ch < 2; ch++ {
			g, w := pcmAt(got, i, ch), pcmAt(want, i, ch)
			gw += g * w
			ww += w * w
		}
	}
	gain = gw / ww
	var sum float64
	for i := 0; i < n; i++ {
		for ch := 0; ch < 2; ch++ {
			d := math.Abs(pcmAt(got, i, ch) - gain*pcmAt(want, i, ch))
			sum += d * d
			if d > peak {
				peak, at = d, i
			}
		}
	}
	return gain, math.Sqrt(sum / float64(2*n)), peak, at
}

// pcmBestLag finds the shift of got against want (in lo..hi) with the least
// residual — the cross-correlation peak, sample-exact — over a window of
// want away from its edges (enough for a sine or a chirp, and cheap under
// the race detector).
func pcmBestLag(got, want []byte, lo, hi int) int {
	w0 := min(max(0, -lo)+1000, len(want)/4/2)
	w1 := min(w0+3000, len(want)/4, len(got)/4-hi)
	best, bestSum := lo, math.Inf(1)
	for lag := lo; lag <= hi; lag++ {
		var sum float64
		for i := w0; i < w1; i++ {
			for ch := 0; ch < 2; ch++ {
				d := pcmAt(got, i+lag, ch) - pcmAt(want, i, ch)
				sum += d * d
			}
		}
		if sum < bestSum {
			best, bestSum = lag, sum
		}
	}
	return best
}

// longestHole is the longest run of frames where both channels are
// below quietLevel: with the sine/cosine test signal, a hole.
func longestHole(pcm []byte) int {
	longest, cur := 0, 0
	for i := 0; i < len(pcm)/4; i++ {
		if math.Abs(pcmAt(pcm, i, 0)) < quietLevel && math.Abs(pcmAt(pcm, i, 1)) < quietLevel {
			cur++
			longest = max(longest, cur)
		} else {
			cur = 0
		}
	}
	return longest
}

// sineFitResidual fits a*sin + b*cos + c of the given period to each channel by
// least squares and returns the residual's RMS and peak over both: how far
// the signal is from one ideal continuous sine.
func sineFitResidual(pcm []byte, period int) (rms, peak float64) {
	n := len(pcm) / 4
	w := 2 * math.Pi / float64(period)
	var sum float64
	for ch := 0; ch < 2; ch++ {
		var m [3][4]float64 // normal equations, augmented
		for i := 0; i < n; i++ {
			v := [3]float64{math.Sin(w * float64(i%period)), math.Cos(w * float64(i%period)), 1}
			x := pcmAt(pcm, i, ch)
			for r := 0; r < 3; r++ {
				for c := 0; c < 3; c++ {
					m[r][c] += v[r] * v[c]
				}
				m[r][3] += v[r] * x
			}
		}
		p := solveNormal3(m)
		for i := 0; i < n; i++ {
			f := p[0]*math.Sin(w*float64(i%period)) + p[1]*math.Cos(w*float64(i%period)) + p[2]
			d := pcmAt(pcm, i, ch) - f
			sum += d * d
			peak = max(peak, math.Abs(d))
		}
	}
	return math.Sqrt(sum / float64(2*n)), peak
}

func solveNormal3(m [3][4]float64) [3]float64 {
	for c := 0; c < 3; c++ {
		p := c
		for r := c + 1; r < 3; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		m[c], m[p] = m[p], m[c]
		for r := 0; r < 3; r++ {
			if r != c && m[c][c] != 0 {
				f := m[r][c] / m[c][c]
				for k := c; k < 4; k++ {
					m[r][k] -= f * m[c][k]
				}
			}
		}
	}
	var x [3]float64
	for i := range x {
		if m[i][i] != 0 {
			x[i] = m[i][3] / m[i][i]
		}
	}
	return x
}

// gaplessFixtures encodes the 1 s test sine the ways the direct backend
// must play gaplessly.
func gaplessFixtures(t testing.TB, dir string, src []byte) map[string]string {
	return map[string]string{
		"cbr-lame":    encodeLame(t, dir, "cbr.mp3", src, "-b", "128"),
		"vbr-xing":    encodeLame(t, dir, "vbr.mp3", src, "-V2"),
		"id3v2":       encodeLame(t, dir, "id3.mp3", src, "-b", "128", "--add-id3v2", "--pad-id3v2-size", "3000", "--tt", "Hold the line"),
		"ffmpeg-lavc": encodeFFmpeg(t, dir, "lavc.mp3", src),
	}
}

// TestGaplessMatchesSource proves the trimming: the decoded length equals
// the source's exactly, the best alignment is lag 0, and the samples match
// mpg123's (a conformant, gapless decoder) to within rounding.
func TestGaplessMatchesSource(t *testing.T) {
	dir := t.TempDir()
	src := testSinePCM(testTrackFrames, testPeriod, testAmp)
	for name, path := range gaplessFixtures(t, dir, src) {
		t.Run(name, func(t *testing.T) {
			got := decodeGapless(t, path)
			if len(got) != len(src) {
				t.Fatalf("decoded %d frames, source has %d", len(got)/4, len(src)/4)
			}
			if lag := pcmBestLag(got, src, -testPeriod/2, testPeriod/2); lag != 0 {
				t.Fatalf("decoded audio is shifted by %d samples against the source", lag)
			}
			gain, rms, peak, at := pcmDiffScaled(got, src)
			t.Logf("vs source PCM: codec gain %.4f, residual RMS %.1f LSB, peak %.0f LSB at frame %d", gain, rms, peak, at)
			if rms > 100 || gain < 0.9 || gain > 1.1 {
				t.Errorf("residual RMS %.1f LSB (gain %.3f) against the source: more than codec noise", rms, gain)
			}
			ref := decodeRefMPG123(t, path)
			if len(ref) != len(got) {
				t.Fatalf("mpg123 decodes %d frames, we decode %d", len(ref)/4, len(got)/4)
			}
			rms, peak = pcmDiff(got, ref, 0)
			t.Logf("vs mpg123: residual RMS %.2f, peak %.0f LSB", rms, peak)
			if peak > 4 {
				t.Errorf("differs from mpg123 by up to %.0f LSB", peak)
			}
		})
	}
}

// TestGaplessDecoderDelay measures go-mp3's own delay rather than
// trusting the 529 from the literature: a chirp (no periodicity, so the
// correlation peak is unambiguous) is found in go-mp3's raw output exactly
// at info frame + LAME's encoder delay + DecoderDelay.
func TestGaplessDecoderDelay(t *testing.T) {
	needMP3Tools(t, "sox")
	dir := t.TempDir()
	wav := filepath.Join(dir, "chirp.raw")
	runTool(t, "sox", "-R", "-n", "-r", "44100", "-c", "2", "-b", "16", "-e", "signed", "-t", "raw", wav, "synth", "1.5", "sine", "100-8000", "vol", "0.5")
	src, err := os.ReadFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	path := encodeLame(t, dir, "chirp.mp3", src, "-V2")
	info := mustMP3Info(t, path)
	raw := decodeGoMP3(t, path)
	want := 1152 + info.EncoderDelay + DecoderDelay
	lag := pcmBestLag(raw, src, 0, 4000)
	t.Logf("go-mp3 raw output: source found at lag %d = 1152 (info frame) + %d (encoder delay) + %d", lag, info.EncoderDelay, lag-1152-info.EncoderDelay)
	if lag != want {
		t.Fatalf("source at lag %d in go-mp3's output, want %d", lag, want)
	}
	if got := decodeGapless(t, path); len(got) != len(src) || pcmBestLag(got, src, -200, 200) != 0 {
		t.Fatalf("gapless decode: %d frames (want %d), lag %d", len(got)/4, len(src)/4, pcmBestLag(got, src, -200, 200))
	}
}

func mustMP3Info(t testing.TB, path string) MP3Info {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseMP3Info(data)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return info
}

// TestGaplessUntaggedPlaysAsDecoded: without an info tag there is nothing
// to trim by, so the decoder's output is passed through unchanged.
func TestGaplessUntaggedPlaysAsDecoded(t *testing.T) {
	dir := t.TempDir()
	src := testSinePCM(testTrackFrames, testPeriod, testAmp)
	path := encodeLame(t, dir, "notag.mp3", src, "-t", "-b", "128")
	info := mustMP3Info(t, path)
	if info.HasInfoTag || info.Gapless {
		t.Fatalf("lame -t wrote an info tag: %+v", info)
	}
	got, naive := decodeGapless(t, path), decodeGoMP3(t, path)
	if !bytes.Equal(got, naive) {
		t.Fatalf("untagged file: gapless output (%d frames) differs from go-mp3's (%d)", len(got)/4, len(naive)/4)
	}
}

// TestNaiveLoopHasHole shows what the trimming removes: go-mp3's own output
// looped has a ~68 ms hole at every seam; the gapless output has none.
func TestNaiveLoopHasHole(t *testing.T) {
	dir := t.TempDir()
	src := testSinePCM(testTrackFrames, testPeriod, testAmp)
	path := encodeLame(t, dir, "cbr.mp3", src, "-b", "128")
	naive, gapless := decodeGoMP3(t, path), decodeGapless(t, path)
	var loopN, loopG []byte
	for i := 0; i < 10; i++ {
		loopN = append(loopN, naive...)
		loopG = append(loopG, gapless...)
	}
	holeN, holeG := longestHole(loopN), longestHole(loopG)
	rmsN, _ := sineFitResidual(loopN, testPeriod)
	rmsG, _ := sineFitResidual(loopG, testPeriod)
	extra := (len(naive) - len(gapless)) / BytesPerFrame
	t.Logf("go-mp3 alone inserts %d samples (%.1f ms) per lap; looped: longest hole %d samples (%.1f ms), residual RMS vs one sine %.0f",
		extra, framesMS(extra), holeN, framesMS(holeN), rmsN)
	t.Logf("gapless, looped: longest hole %d samples (%.1f ms), residual RMS %.1f", holeG, framesMS(holeG), rmsG)
	if holeN < 2000 {
		t.Errorf("expected go-mp3's naive loop to show a hole of ~68 ms, got %.1f ms: the test signal cannot see holes", framesMS(holeN))
	}
	if holeG != 0 {
		t.Errorf("gapless loop has a %.2f ms hole", framesMS(holeG))
	}
}

func framesMS(frames int) float64 { return float64(frames) * 1000 / SampleRate }

// TestGaplessTruncated: a file cut short plays what it has and says so.
func TestGaplessTruncated(t *testing.T) {
	dir := t.TempDir()
	src := testSinePCM(testTrackFrames, testPeriod, testAmp)
	path := encodeLame(t, dir, "cbr.mp3", src, "-b", "128")
	data, _ := os.ReadFile(path)
	cut := data[:len(data)/2]
	g, err := NewGapless(bytes.NewReader(cut), int64(len(cut)), mustMP3Info(t, path))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Truncated() || len(got) >= len(src) || len(got) < len(src)/3 {
		t.Fatalf("truncated=%v, decoded %d of %d frames", g.Truncated(), len(got)/4, len(src)/4)
	}
}

// TestGaplessForgedID3 checks that a forged ID3 size is refused without
// the allocation go-mp3 would make (~256 MB).
func TestGaplessForgedID3(t *testing.T) {
	data := append([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), make([]byte, 2000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := OpenGapless(bytes.NewReader(data), int64(len(data)))
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("forged ID3 size accepted")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("parsing a forged ID3 tag allocated %d bytes", grew)
	}
	t.Logf("refused: %v", err)
}

// TestGaplessStreams checks memory stays flat while decoding a long file:
// the decoder holds a frame, not the file.
func TestGaplessStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes a 10 s file")
	}
	dir := t.TempDir()
	path := encodeLame(t, dir, "long.mp3", testSinePCM(10*SampleRate, testPeriod, testAmp), "-b", "128")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	g, err := OpenGapless(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8820)
	var peak, base uint64
	var mst runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mst)
	base = mst.HeapInuse
	for i := 0; ; i++ {
		if _, err := g.Read(buf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&mst)
			peak = max(peak, mst.HeapInuse)
		}
	}
	// Decoded whole, the file would take 1.7 MB.
	grew := int64(peak) - int64(base)
	t.Logf("10 s file (%d KB): live heap grew by at most %d KB while decoding", fi.Size()>>10, grew>>10)
	if grew > 512<<10 {
		t.Errorf("live heap grew by %d KB decoding a %d KB file", grew>>10, fi.Size()>>10)
	}
}

// BenchmarkDecodeGapless measures decode speed of the built-in track as a
// multiple of real time (x-realtime): how much CPU headroom playback has.
func BenchmarkDecodeGapless(b *testing.B) {
	buf := make([]byte, 8820)
	var frames int64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		g, err := OpenGapless(bytes.NewReader(FallbackMP3), int64(len(FallbackMP3)))
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := g.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		frames += g.Frames()
	}
	audio := time.Duration(frames) * time.Second / SampleRate
	b.ReportMetric(audio.Seconds()/time.Since(start).Seconds(), "x-realtime")
	b.ReportMetric(float64(len(FallbackMP3))/1e6*float64(b.N)/time.Since(start).Seconds(), "MB/s")
}

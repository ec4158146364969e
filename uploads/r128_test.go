package uploads

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// writeWAV16 writes interleaved float samples as a 16-bit PCM WAV.
func writeWAV16(t testing.TB, path string, rate, ch int, x []float32) {
	t.Helper()
	var b bytes.Buffer
	data := len(x) * 2
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+data))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(ch), uint32(rate), uint32(rate * ch * 2), uint16(ch * 2), uint16(16)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(data))
	for _, v := range x {
		s := math.Round(float64(v) * 32767)
		s = max(-32768, min(32767, s))
		binary.Write(&b, binary.LittleEndian, int16(s))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// quantise16 returns x as the 16-bit WAV stores it, so meter and ffmpeg see
// the same samples.
func quantise16(x []float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		s := math.Round(float64(v) * 32767)
		y[i] = float32(max(-32768, min(32767, s)) / 32768)
	}
	return y
}

func sine(rate, ch int, secs, freq, dbfs float64) []float32 {
	n := int(secs * float64(rate))
	a := math.Pow(10, dbfs/20)
	x := make([]float32, n*ch)
	for i := 0; i < n; i++ {
		v := float32(a * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		for c := 0; c < ch; c++ {
			x[i*ch+c] = v
		}
	}
	return x
}

// pink returns pink-ish noise (Paul Kellett's filter) at roughly dbfs RMS,
// independent per channel.
func pink(rate, ch int, secs, dbfs float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	n := int(secs * float64(rate))
	x := make([]float32, n*ch)
	for c := 0; c < ch; c++ {
		var b0, b1, b2, b3, b4, b5, b6 float64
		for i := 0; i < n; i++ {
			w := r.Float64()*2 - 1
			b0 = 0.99886*b0 + w*0.0555179
			b1 = 0.99332*b1 + w*0.0750759
			b2 = 0.96900*b2 + w*0.1538520
			b3 = 0.86650*b3 + w*0.3104856
			b4 = 0.55000*b4 + w*0.5329522
			b5 = -0.7616*b5 - w*0.0168980
			x[i*ch+c] = float32((b0 + b1 + b2 + b3 + b4 + b5 + b6 + w*0.5362) * 0.11)
			b6 = w * 0.115926
		}
	}
	scale(x, dbfs-rmsDB(x))
	return x
}

// fadeIn ramps the first n frames up, so a test signal does not start
// with a step whose ringing would be a (real) true peak of its own.
func fadeIn(x []float32, ch, n int) []float32 {
	for i := 0; i < n && i*ch < len(x); i++ {
		for c := 0; c < ch; c++ {
			x[i*ch+c] *= float32(i) / float32(n)
		}
	}
	return x
}

func rmsDB(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return 10 * math.Log10(s/float64(len(x)))
}

func scale(x []float32, db float64) {
	g := float32(math.Pow(10, db/20))
	for i := range x {
		x[i] *= g
	}
}

var (
	ffI    = regexp.MustCompile(`(?s)Integrated loudness:\s+I:\s+(-?[0-9.]+|-inf) LUFS`)
	ffPeak = regexp.MustCompile(`(?s)True peak:\s+Peak:\s+(-?[0-9.]+|-inf) dBFS`)
)

// ffmpegR128 measures a file with ffmpeg's ebur128 filter, the reference
// moh's meter is held to.
func ffmpegR128(t testing.TB, path string) (lufs, tp float64) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostats", "-i", path, "-af", "ebur128=peak=true", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg ebur128: %v\n%s", err, out)
	}
	m, p := ffI.FindSubmatch(out), ffPeak.FindSubmatch(out)
	if m == nil || p == nil {
		t.Fatalf("cannot parse ffmpeg output:\n%s", out)
	}
	parse := func(s []byte) float64 {
		if string(s) == "-inf" {
			return math.Inf(-1)
		}
		v, err := strconv.ParseFloat(string(s), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return parse(m[1]), parse(p[1])
}

func TestMeterAgreesWithFFmpeg(t *testing.T) {
	halfSilent := func(rate int) []float32 {
		x := pink(rate, 2, 6, -23, 7)
		for i := 0; i < len(x)/2; i++ {
			x[i] = 0
		}
		return x
	}
	quietTail := func(rate int) []float32 {
		// A loud part and a part 15 dB quieter: the relative gate drops the quiet part.
		x := pink(rate, 2, 6, -16, 9)
		scale(x[len(x)/2:], -15)
		return x
	}
	cases := []struct {
		name string
		rate int
		ch   int
		x    func(rate int) []float32
	}{
		{"sine 1k -20dBFS 44.1k", 44100, 2, func(r int) []float32 { return sine(r, 2, 3, 1000, -20) }},
		{"sine 997 -20dBFS 48k", 48000, 2, func(r int) []float32 { return sine(r, 2, 3, 997, -20) }},
		{"sine 100 -12dBFS 44.1k", 44100, 2, func(r int) []float32 { return sine(r, 2, 3, 100, -12) }},
		{"pink -23 44.1k", 44100, 2, func(r int) []float32 { return pink(r, 2, 4, -23, 1) }},
		{"pink -30 48k", 48000, 2, func(r int) []float32 { return pink(r, 2, 4, -30, 2) }},
		{"pink -14 22.05k", 22050, 2, func(r int) []float32 { return pink(r, 2, 4, -14, 3) }},
		{"pink -20 8k mono", 8000, 1, func(r int) []float32 { return pink(r, 1, 4, -20, 4) }},
		{"silent half 44.1k", 44100, 2, halfSilent},
		{"loud then quiet 48k", 48000, 2, quietTail},
		{"7 kHz sine -3dBFS (inter-sample peaks)", 44100, 2, func(r int) []float32 { return fadeIn(sine(r, 2, 3, 7000, -3), 2, r/20) }},
		{"pink -8 44.1k (loud master)", 44100, 2, func(r int) []float32 { return pink(r, 2, 4, -8, 11) }},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := quantise16(c.x(c.rate))
			p := filepath.Join(dir, "s.wav")
			writeWAV16(t, p, c.rate, c.ch, x)
			m := newMeter(c.rate, c.ch)
			m.Write(x)
			got, gotTP := m.Integrated(), m.TruePeak()
			want, wantTP := ffmpegR128(t, p)
			t.Logf("moh %.2f LUFS %.2f dBTP, ffmpeg %.1f LUFS %.1f dBTP", got, gotTP, want, wantTP)
			if math.Abs(got-want) > 0.15 { // ffmpeg prints one decimal
				t.Errorf("integrated: moh %.2f LUFS, ffmpeg %.1f LUFS", got, want)
			}
			if math.Abs(gotTP-wantTP) > 0.4 { // ffmpeg reads high-frequency peaks high: +0.7 dB on a steady 7 kHz sine without the fade-in
				t.Errorf("true peak: moh %.2f dBTP, ffmpeg %.1f dBTP", gotTP, wantTP)
			}
		})
	}
}

func TestMeterSilence(t *testing.T) {
	m := newMeter(44100, 2)
	m.Write(make([]float32, 44100*2*3))
	if l := m.Integrated(); !math.IsInf(l, -1) {
		t.Errorf("silence measured %v LUFS, want -Inf", l)
	}
}

func BenchmarkMeter(b *testing.B) {
	x := pink(44100, 2, 10, -20, 5)
	b.SetBytes(int64(len(x) * 4))
	b.ResetTimer()
	for range b.N {
		m := newMeter(44100, 2)
		m.Write(x)
		_ = m.Integrated()
		_ = m.TruePeak()
	}
	b.ReportMetric(10*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
}

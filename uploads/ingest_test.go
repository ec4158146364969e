package uploads

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	gomp3 "github.com/hajimehoshi/go-mp3"
)

// TestIngestFormats runs every kind of input a site sends through the real
// pipeline and checks the rendition as the players will see it.
func TestIngestFormats(t *testing.T) {
	type mk func(t *testing.T, dir string) string
	lameFrom := func(rate, ch int, args ...string) mk {
		return func(t *testing.T, dir string) string {
			in := sineWAV(t, dir, rate, ch, -20)
			out := filepath.Join(dir, "in.mp3")
			run(t, "lame", append(append([]string{"--silent"}, args...), in, out)...)
			return out
		}
	}
	soxFrom := func(rate, ch int, ext string, args ...string) mk {
		return func(t *testing.T, dir string) string {
			in := sineWAV(t, dir, rate, ch, -20)
			out := filepath.Join(dir, "in."+ext)
			run(t, "sox", append(append([]string{in}, args...), out)...)
			return out
		}
	}
	withTags := func(m mk) mk {
		return func(t *testing.T, dir string) string {
			p := m(t, dir)
			b, _ := os.ReadFile(p)
			ape := append([]byte("APETAGEX"), make([]byte, 24)...) // APE footer (empty tag)
			v1 := append([]byte("TAG"), make([]byte, 125)...)
			os.WriteFile(p, append(append(b, ape...), v1...), 0o644)
			return p
		}
	}
	cases := []struct {
		name   string
		make   mk
		format string
		rate   int
	}{
		{"MPEG-1 32k stereo CBR", lameFrom(32000, 2, "-b", "128"), "mp3", 32000},
		{"MPEG-1 44.1k stereo VBR", lameFrom(44100, 2, "-V", "2"), "mp3", 44100},
		{"MPEG-1 48k mono CBR", lameFrom(48000, 1, "-b", "96", "-m", "m"), "mp3", 48000},
		{"MPEG-2 22.05k mono", lameFrom(22050, 1, "-b", "64", "-m", "m"), "mp3", 22050},
		{"MPEG-2 24k stereo VBR", lameFrom(24000, 2, "-V", "4"), "mp3", 24000},
		{"MPEG-2.5 8k mono", lameFrom(8000, 1, "-b", "32", "-m", "m"), "mp3", 8000},
		{"MPEG-2.5 11.025k stereo", lameFrom(11025, 2, "-b", "48"), "mp3", 11025},
		{"MP3 with ID3v2, ID3v1 and APE tags", withTags(lameFrom(44100, 2, "-b", "128", "--add-id3v2", "--tt", "Hold music", "--ta", "Vendor")), "mp3", 44100},
		{"WAV 48k stereo", soxFrom(48000, 2, "wav"), "wav", 48000},
		{"WAV 8k mono µ-law", soxFrom(8000, 1, "wav", "-e", "u-law"), "wav", 8000},
		{"WAV 96k 24-bit", soxFrom(96000, 2, "wav", "-b", "24"), "wav", 96000},
		{"FLAC 44.1k", soxFrom(44100, 2, "flac"), "flac", 44100},
		{"FLAC 22.05k mono", soxFrom(22050, 1, "flac"), "flac", 22050},
		{"Ogg Vorbis 44.1k", soxFrom(44100, 2, "ogg"), "ogg", 44100},
	}
	l := testLib(t, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // ingests queue in the library; the checks overlap
			in := c.make(t, t.TempDir())
			tr, existed, err := ingestFile(t, l, in)
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			if existed || tr.Format != c.format || tr.SampleRate != c.rate {
				t.Errorf("track %+v existed=%v, want format %s rate %d", tr, existed, c.format, c.rate)
			}
			t.Logf("%s: %.2f→%.2f LUFS tp %.2f→%.2f gain %.2f dur %v", tr.Detail, tr.LoudnessBefore, tr.LoudnessAfter, tr.TruePeakBefore, tr.TruePeakAfter, tr.GainDB, tr.Duration)
			checkRendition(t, tr, 2.0)
		})
	}
}

// checkRendition holds a rendition to the house format: MPEG-1 Layer III
// 44.1 kHz stereo with a LAME tag whose length is exact, the 441 Hz tone
// at 441 Hz, a seamless loop, loudness at target, true peak under -1 dBTP.
func checkRendition(t *testing.T, tr Track, secs float64) {
	t.Helper()
	b, err := os.ReadFile(tr.Path)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := parseMPEG(b)
	if !ok || h.version != 1 || h.layer != 3 || h.rate != 44100 || h.mono {
		t.Fatalf("rendition header %+v, want MPEG-1 Layer III 44.1 kHz stereo", h)
	}
	frames, delayPad, isTag := parseXing(b[:h.length], h)
	if !isTag || delayPad == 0 {
		t.Fatalf("rendition has no LAME tag with delay and padding (tag %v, delay+pad %d)", isTag, delayPad)
	}
	want := int(math.Round(secs * 44100))
	if got := int(frames*1152 - delayPad); got != want {
		t.Errorf("LAME tag says %d samples, want %d", got, want)
	}
	x := decodeMP3(t, tr.Path)
	if n := len(x) / 2; n != want {
		t.Errorf("mpg123 decodes %d frames, want %d", n, want)
	}
	if f := zeroCrossingHz(x, 2, 44100); math.Abs(f-441) > 1 {
		t.Errorf("tone decodes at %.2f Hz, want 441", f)
	}
	if w := seamHoles(x, 2, 44100); w < 0.8 {
		t.Errorf("loop seam: quietest 5 ms window at %.2f of the track's RMS: a hole or click", w)
	}
	if math.Abs(tr.LoudnessAfter-(-18)) > 0.5 {
		t.Errorf("loudness after %.2f LUFS, want -18 ±0.5", tr.LoudnessAfter)
	}
	if tr.TruePeakAfter > -1 {
		t.Errorf("true peak after %.2f dBTP, want ≤ -1", tr.TruePeakAfter)
	}
	// go-mp3 is what the direct player decodes with: it must read the
	// rendition at the same pitch and level.
	d, err := gomp3.NewDecoder(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("go-mp3: %v", err)
	}
	if d.SampleRate() != 44100 {
		t.Errorf("go-mp3 sees %d Hz", d.SampleRate())
	}
	pcm := new(bytes.Buffer)
	if _, err := pcm.ReadFrom(d); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("go-mp3 decode: %v", err)
	}
	raw := pcm.Bytes()
	y := make([]float32, len(raw)/2)
	for i := range y {
		y[i] = float32(int16(uint16(raw[2*i])|uint16(raw[2*i+1])<<8)) / 32768
	}
	// go-mp3 is not gapless: it outputs the tag frame as 1152 samples of
	// silence and keeps delay and padding. Its length must therefore be
	// exactly what the LAME tag lets the direct player trim to the truth.
	if got := int64(len(y) / 2); got != (frames+1)*1152 {
		t.Errorf("go-mp3 decodes %d frames, want %d (tag frames + the tag frame itself)", got, (frames+1)*1152)
	}
	if f := zeroCrossingHz(y, 2, 44100); math.Abs(f-441) > 1 {
		t.Errorf("go-mp3: tone at %.2f Hz, want 441", f)
	}
	m := newMeter(44100, 2)
	m.Write(y)
	if l := m.Integrated(); math.Abs(l-tr.LoudnessAfter) > 0.3 {
		t.Errorf("go-mp3 decode measures %.2f LUFS, mpg123 %.2f", l, tr.LoudnessAfter)
	}
}

package uploads

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayerIIIConformance ingests every class of valid Layer III file a
// site may send (MPEG-1/2/2.5; CBR, VBR, free format; stereo, joint,
// dual-channel, mono; odd lengths; files joined at a rate or channel
// change; stray bytes after the audio) and holds each rendition to the
// original's length and pitch. The right length is what mpg123 decodes
// from the original, at 44.1 kHz: the exact source length when the file
// carries a LAME tag, the source plus the encoder's delay and padding when
// the frames are too small for one. The table is printed with -v.
func TestLayerIIIConformance(t *testing.T) {
	type part struct {
		rate, ch int
		secs     float64
		args     []string
	}
	p := func(rate, ch int, secs float64, args ...string) part { return part{rate, ch, secs, args} }
	cases := []struct {
		class string
		parts []part
		tail  string // bytes appended after the audio
	}{
		{"MPEG-1 44.1k stereo CBR 128", []part{p(44100, 2, 2, "-m", "s", "-b", "128")}, ""},
		{"MPEG-1 44.1k joint VBR -V2", []part{p(44100, 2, 2, "-V", "2")}, ""},
		{"MPEG-1 48k dual-channel CBR 192", []part{p(48000, 2, 2, "-m", "d", "-b", "192")}, ""},
		{"MPEG-1 32k mono CBR 64", []part{p(32000, 1, 2, "-m", "m", "-b", "64")}, ""},
		{"MPEG-1 44.1k free format 256", []part{p(44100, 2, 2, "--freeformat", "-b", "256")}, ""},
		{"MPEG-1 44.1k odd length 1.2345 s", []part{p(44100, 2, 1.2345, "-b", "160")}, ""},
		{"MPEG-2 24k joint VBR -V4", []part{p(24000, 2, 2, "-V", "4")}, ""},
		{"MPEG-2 22.05k mono CBR 32 (no tag fits)", []part{p(22050, 1, 2, "-m", "m", "-b", "32")}, ""},
		{"MPEG-2 16k stereo CBR 64", []part{p(16000, 2, 2, "-m", "s", "-b", "64")}, ""},
		{"MPEG-2 22.05k mono odd length 1.777 s", []part{p(22050, 1, 1.777, "-m", "m", "-b", "64")}, ""},
		{"MPEG-2 22.05k free format 96", []part{p(22050, 2, 2, "--freeformat", "-b", "96")}, ""},
		{"MPEG-2.5 12k mono CBR 32", []part{p(12000, 1, 2, "-m", "m", "-b", "32")}, ""},
		{"MPEG-2.5 11.025k joint CBR 48", []part{p(11025, 2, 2, "-b", "48")}, ""},
		{"MPEG-2.5 8k mono CBR 16 (no tag fits)", []part{p(8000, 1, 2, "-m", "m", "-b", "16")}, ""},
		{"MPEG-2.5 8k mono VBR odd length 1.5 s", []part{p(8000, 1, 1.5, "-m", "m", "-V", "6")}, ""},
		{"joined 44.1k + 48k", []part{p(44100, 2, 2, "-b", "128"), p(48000, 2, 2, "-b", "128")}, ""},
		{"joined 22.05k mono + 44.1k stereo", []part{p(22050, 1, 2, "-m", "m", "-b", "48"), p(44100, 2, 2, "-V", "2")}, ""},
		{"MPEG-1 44.1k + stray bytes", []part{p(44100, 2, 2, "-b", "128")}, "\xff\xff junk"},
	}
	type row struct {
		class, detail               string
		want, got                   int
		hz                          []float64
		lenOK, pitchOK, gaplessOrig bool
	}
	var rows []row
	l := testLib(t, nil)
	for _, c := range cases {
		t.Run(c.class, func(t *testing.T) {
			dir := t.TempDir()
			var joined [][]byte
			var bounds []int
			want, source := 0, 0
			for i, pt := range c.parts {
				mp := lameSine(t, dir, fmt.Sprint("p", i), pt.rate, pt.ch, pt.secs, pt.args...)
				joined = append(joined, readAll(t, mp))
				decoded := len(decodeMP3(t, mp)) / 2
				want += int(math.Round(float64(decoded) * 44100 / float64(pt.rate)))
				source += int(math.Round(pt.secs * 44100))
				bounds = append(bounds, want)
			}
			joined = append(joined, []byte(c.tail))
			in := writeFile(t, filepath.Join(dir, "in.mp3"), joined...)
			tr, _, err := ingestFile(t, l, in)
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			x := decodeMP3(t, tr.Path)
			r := row{class: c.class, detail: tr.Detail, want: want, got: len(x) / 2, gaplessOrig: want == source}
			r.lenOK = abs(r.got-r.want) <= 2*len(c.parts)
			r.pitchOK = true
			from := 0
			for _, to := range bounds {
				f, ok := pitchOK(x, from, min(to, r.got))
				r.hz = append(r.hz, f)
				r.pitchOK = r.pitchOK && ok
				from = to
			}
			rows = append(rows, r)
			if !r.lenOK {
				t.Errorf("rendition is %d samples, want %d", r.got, r.want)
			}
			if !r.pitchOK {
				t.Errorf("tone at %v Hz, want 441 ±0.1 %%", r.hz)
			}
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| class | detail | want (44.1k samples) | rendered | Δ | exact source length | tone Hz (per part) | ok |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		hz := make([]string, len(r.hz))
		for i, f := range r.hz {
			hz[i] = fmt.Sprintf("%.2f", f)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %+d | %v | %s | %v |\n", r.class, r.detail, r.want, r.got, r.got-r.want,
			r.gaplessOrig, strings.Join(hz, " / "), r.lenOK && r.pitchOK)
	}
	t.Log(b.String())
}

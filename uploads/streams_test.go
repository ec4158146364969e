package uploads

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// lameSine writes a secs-long 441 Hz sine at rate Hz and ch channels at
// -20 dBFS and encodes it with lame and args; it returns the MP3's path.
func lameSine(t testing.TB, dir, name string, rate, ch int, secs float64, args ...string) string {
	t.Helper()
	wav := filepath.Join(dir, name+".wav")
	writeWAV16(t, wav, rate, ch, sine(rate, ch, secs, 441, -20))
	out := filepath.Join(dir, name+".mp3")
	run(t, "lame", append(append([]string{"--silent"}, args...), wav, out)...)
	return out
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, parts ...[]byte) string {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(parts, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// pitchOK reports the 441 Hz tone's frequency in x[from:to] (frames at
// 44.1 kHz stereo) and whether it is within 0.1 %.
func pitchOK(x []float32, from, to int) (float64, bool) {
	f := zeroCrossingHz(x[2*from:2*to], 2, 44100)
	return f, math.Abs(f-441) <= 0.441
}

// TestJoinedStreams: two MP3s joined with cat, the second at another rate
// or channel count, play each part at its own speed and as long as it is.
// Before, mpg123 went on at the new rate with no one told: the 48 kHz part
// of 44.1k+48k came out 8.8 % slow (405 Hz), and the second part's info
// frame and encoder delay became a hole in the middle.
func TestJoinedStreams(t *testing.T) {
	type part struct {
		rate, ch int
		args     []string
	}
	cases := []struct {
		name  string
		parts []part
	}{
		{"44.1k then 48k", []part{{44100, 2, []string{"-b", "128"}}, {48000, 2, []string{"-b", "128"}}}},
		{"mono then stereo", []part{{44100, 1, []string{"-b", "64", "-m", "m"}}, {44100, 2, []string{"-b", "128"}}}},
		{"22.05k mono then 44.1k stereo then 32k", []part{{22050, 1, []string{"-b", "32", "-m", "m"}}, {44100, 2, []string{"-V", "2"}}, {32000, 2, []string{"-b", "96"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var joined [][]byte
			var bounds []int // each part's end, in 44.1 kHz frames
			end := 0
			for i, p := range c.parts {
				mp := lameSine(t, dir, string(rune('a'+i)), p.rate, p.ch, 2, p.args...)
				joined = append(joined, readAll(t, mp))
				end += len(decodeMP3(t, mp)) / 2 * 44100 / p.rate
				bounds = append(bounds, end)
			}
			in := writeFile(t, filepath.Join(dir, "joined.mp3"), joined...)
			l := testLib(t, nil)
			tr, _, err := ingestFile(t, l, in)
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			t.Logf("%s", tr.Detail)
			x := decodeMP3(t, tr.Path)
			if n := len(x) / 2; abs(n-end) > 2*len(c.parts) {
				t.Errorf("rendition is %d frames, the parts together %d", n, end)
			}
			from := 0
			for i, to := range bounds {
				to = min(to, len(x)/2)
				if f, ok := pitchOK(x, from, to); !ok {
					t.Errorf("part %d plays at %.2f Hz, want 441", i+1, f)
				}
				from = to
			}
		})
	}
}

// TestFreeFormat: lame --freeformat writes frames whose header gives no
// bitrate; mpg123 decodes them, and so must ingest. Before, the sniffer
// called them "random bytes".
func TestFreeFormat(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		rate int
		kbps string
	}{{"MPEG-1 44.1k 200k", 44100, "200"}, {"MPEG-1 32k 450k", 32000, "450"}, {"MPEG-2 24k 100k", 24000, "100"}} {
		t.Run(tc.name, func(t *testing.T) {
			in := lameSine(t, dir, tc.kbps, tc.rate, 2, 2, "--freeformat", "-b", tc.kbps)
			tr, _, err := ingestFile(t, testLib(t, nil), in)
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			if !strings.Contains(tr.Detail, "free format") {
				t.Errorf("detail %q", tr.Detail)
			}
			checkLengthPitch(t, tr, 2*44100)
		})
	}
}

// checkLengthPitch decodes a rendition and checks its length (±2
// samples) and the 441 Hz tone.
func checkLengthPitch(t *testing.T, tr Track, want int) {
	t.Helper()
	x := decodeMP3(t, tr.Path)
	if n := len(x) / 2; abs(n-want) > 2 {
		t.Errorf("rendition is %d frames, want %d", n, want)
	}
	if f, ok := pitchOK(x, 0, len(x)/2); !ok {
		t.Errorf("tone at %.2f Hz, want 441", f)
	}
}

// TestStrayBytesAndShortLastFrame: a complete MP3 followed by stray bytes,
// or whose last frame lacks a few bytes, is a whole track, as every
// decoder plays it. Before, each was refused as truncated ("the audio ends
// at 2.0 s of the 2.0 s its header announces").
func TestStrayBytesAndShortLastFrame(t *testing.T) {
	dir := t.TempDir()
	tagged := readAll(t, lameSine(t, dir, "tagged", 44100, 2, 2, "-b", "128"))
	plain := readAll(t, lameSine(t, dir, "plain", 44100, 2, 2, "-t", "-b", "128"))
	plainLen := len(decodeMP3(t, filepath.Join(dir, "plain.mp3"))) / 2
	header := tagged[:4] // a header of the stream's own kind
	cases := []struct {
		name string
		b    []byte
		want int // rendition length; 0: within one frame of 2 s
	}{
		{"one 0xFF", slices.Concat(tagged, []byte{0xFF}), 88200},
		{"five 0xFF", slices.Concat(tagged, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), 88200},
		{"junk", slices.Concat(tagged, []byte("hello, junk!")), 88200},
		{"unknown trailing tag", slices.Concat(tagged, []byte("XTAG\x00\x01"), make([]byte, 200)), 88200},
		{"a frame header and a few bytes", slices.Concat(tagged, header, []byte{1, 2, 3, 4}), 88200},
		{"untagged, stray 0xFF", slices.Concat(plain, []byte{0xFF, 0xFF}), plainLen},
		{"last frame 5 bytes short", tagged[:len(tagged)-5], 0},
		{"untagged, last frame 5 bytes short", plain[:len(plain)-5], 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := writeFile(t, filepath.Join(t.TempDir(), "in.mp3"), c.b)
			tr, _, err := ingestFile(t, testLib(t, nil), in)
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			if c.want > 0 {
				checkLengthPitch(t, tr, c.want)
			} else if d := tr.Duration.Seconds() - 2; d > 0.06 || d < -0.03 {
				t.Errorf("rendition lasts %v, want 2 s within a frame", tr.Duration)
			}
		})
	}
}

// TestRefusalWording: lengths in refusals read as a person says them.
func TestRefusalWording(t *testing.T) {
	for secs, want := range map[float64]string{
		0.5: "0.50 s", 2.5: "2.5 s", 59.9: "59.9 s", 60: "1 min", 125: "2 min 5 s",
		3600: "1 h", 5400: "1 h 30 min", 36000: "10 h",
	} {
		if got := fmtDur(secs); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", secs, got, want)
		}
	}
	// An info tag announcing 10 hours over 2 s of audio.
	dir := t.TempDir()
	b := readAll(t, lameSine(t, dir, "a", 44100, 2, 2, "-b", "128"))
	binary.BigEndian.PutUint32(b[4+32+8:], uint32(36000*44100/1152))
	in := writeFile(t, filepath.Join(dir, "long.mp3"), b)
	_, _, err := ingestFile(t, testLib(t, func(o *Options) { o.MaxDuration = 11 * 3600e9 }), in)
	rf, ok := AsRefusal(err)
	if !ok || rf.Code != CodeTruncated || !strings.Contains(rf.Message, "of the 10 h its header") {
		t.Errorf("got %v, want truncated at 2.0 s of 10 h", err)
	}
	_, _, err = ingestFile(t, testLib(t, nil), in)
	if rf, ok := AsRefusal(err); !ok || rf.Code != CodeTooLong || !strings.Contains(rf.Message, "10 h long; the limit is 2 h") {
		t.Errorf("got %v, want too long: 10 h", err)
	}
	// Next to nothing decoded: no "0.00 s".
	l := testLib(t, nil)
	for _, frames := range []int64{0, 10} {
		j := &job{rate: 44100, frames: frames, s: sniffed{Format: "wav"}}
		err := l.refuseDecoded(j, 0, nil)
		if rf, ok := AsRefusal(err); !ok || rf.Code != CodeTooShort || strings.Contains(rf.Message, "0.00") {
			t.Errorf("%d frames: %v", frames, err)
		}
	}
}

// TestGarbageThatParses: valid frame headers over random payload decode
// to noise far above full scale. Before, such a file was a 10 s track
// measured at +149 LUFS.
func TestGarbageThatParses(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	var b []byte
	for range 10 * 44100 / 1152 {
		f := make([]byte, 417)
		for i := range f {
			f[i] = byte(rnd.UintN(256))
		}
		copy(f, []byte{0xFF, 0xFB, 0x90, 0x64})
		b = append(b, f...)
	}
	in := writeFile(t, filepath.Join(t.TempDir(), "garbage.mp3"), b)
	_, _, err := ingestFile(t, testLib(t, nil), in)
	if rf, ok := AsRefusal(err); !ok || rf.Code != CodeCorrupt || !strings.Contains(rf.Message, "damaged") {
		t.Fatalf("got %v, want a corrupt refusal", err)
	}
	t.Log(err)
}

// TestMidStreamStart: an MP3 cut out of a longer stream starts with the
// frames whose data lay in what was cut away; mpg123 outputs silence for
// them and a rising granule after. Before, that was a 26-52 ms hole at
// every loop seam.
func TestMidStreamStart(t *testing.T) {
	dir := t.TempDir()
	// 48 kHz 128 kbit/s: every frame is 384 bytes, so the cut at the end
	// falls between frames and only the start is mid-stream.
	b := readAll(t, lameSine(t, dir, "long", 48000, 2, 6, "-t", "-b", "128"))
	for _, start := range []int{384*20 + 100, 384 * 31} {
		in := writeFile(t, filepath.Join(t.TempDir(), "mid.mp3"), b[start:384*220])
		tr, _, err := ingestFile(t, testLib(t, nil), in)
		if err != nil {
			t.Fatalf("ingest: %v", err)
		}
		x := decodeMP3(t, tr.Path)
		if w := seamHoles(x, 2, 44100); w < 0.8 {
			t.Errorf("cut at %d: quietest 5 ms at the seam is %.2f of the track's RMS: a hole", start, w)
		}
		if f, ok := pitchOK(x, 0, len(x)/2); !ok {
			t.Errorf("tone at %.2f Hz", f)
		}
	}
}

// TestLoudMasterNotClipped: a master whose decoded peaks are 3 dB over
// full scale keeps its waveform through the gain. Before, sox read the
// decoder's floats into integers, clipping the peaks at 0 dBFS, and then
// applied the gain to what was left: the crest factor fell by 3 dB.
func TestLoudMasterNotClipped(t *testing.T) {
	dir := t.TempDir()
	// Ten in-phase harmonics of 100 Hz: peaks of +3 dBFS once a period,
	// an RMS near -10 dBFS.
	const rate, secs = 44100, 3
	x := make([]float32, 2*rate*secs)
	for i := range rate * secs {
		var v float64
		for k := 1; k <= 10; k++ {
			v += math.Cos(2 * math.Pi * 100 * float64(k) * float64(i) / rate)
		}
		x[2*i], x[2*i+1] = float32(v*math.Sqrt2/10), float32(v*math.Sqrt2/10)
	}
	raw := writeFile(t, filepath.Join(dir, "loud.f32"), float32Bytes(x))
	in := filepath.Join(dir, "loud.mp3")
	run(t, "ffmpeg", "-loglevel", "error", "-f", "f32le", "-ar", "44100", "-ac", "2", "-i", raw, "-c:a", "libmp3lame", "-b:a", "256k", in)
	orig := decodeMP3(t, in)
	if p := peak(orig); p < 1.3 {
		t.Fatalf("test master peaks at %.2f, want +3 dBFS", p)
	}
	tr, _, err := ingestFile(t, testLib(t, nil), in)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	got := decodeMP3(t, tr.Path)
	cin, cout := crestDB(orig), crestDB(got)
	t.Logf("crest factor: master %.2f dB, rendition %.2f dB (gain %.2f dB)", cin, cout, tr.GainDB)
	if math.Abs(cin-cout) > 1 {
		t.Errorf("crest factor %.2f dB, the master's %.2f: the peaks were clipped", cout, cin)
	}
}

func peak(x []float32) float64 {
	var p float64
	for _, v := range x {
		p = max(p, math.Abs(float64(v)))
	}
	return p
}

func crestDB(x []float32) float64 { return 20*math.Log10(peak(x)) - rmsDB(x) }

// TestDecodeFailedHidesPaths: what the decoder says reaches the API client
// without the server's paths; the log keeps them. Before, the refusal
// quoted sox's "can't open input file `/…/tracks/originals/.moh-tmp-upload-…'".
func TestDecodeFailedHidesPaths(t *testing.T) {
	var logged bytes.Buffer
	l := testLib(t, func(o *Options) { o.Logger = slogTo(&logged) })
	// PCM WAV with 0 bits per sample: the sniffer passes it, sox cannot open it.
	hdr := []byte("RIFF\x24\x00\x01\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00\x44\xac\x00\x00\x10\xb1\x02\x00\x04\x00\x00\x00data\x00\x00\x01\x00")
	in := writeFile(t, filepath.Join(t.TempDir(), "zero-bits.wav"), hdr, make([]byte, 65536))
	_, _, err := ingestFile(t, l, in)
	rf, ok := AsRefusal(err)
	if !ok || rf.Code != CodeDecodeFailed {
		t.Fatalf("got %v, want decode_failed", err)
	}
	for _, leak := range []string{l.opts.DataDir, "/tracks/", ".moh-tmp-"} {
		if strings.Contains(rf.Message, leak) {
			t.Errorf("refusal %q shows %q", rf.Message, leak)
		}
	}
	if !strings.Contains(rf.Message, "don't understand") {
		t.Errorf("refusal %q lost the decoder's reason", rf.Message)
	}
	if !strings.Contains(logged.String(), l.opts.DataDir) {
		t.Errorf("the log lacks the path:\n%s", logged.String())
	}
}

// TestWarmupChunks: how much warm-up is dropped does not depend on the
// sizes the decoder's pipe delivers, so pass 2 drops what pass 1 measured.
func TestWarmupChunks(t *testing.T) {
	x := make([]float32, 2*6000)
	for i := 2304; i < 6000; i++ {
		v := float32(0.3 * math.Sin(float64(i)/10))
		if i < 2304+576 {
			v *= float32(i-2304) / 576 // the rising granule
		}
		x[2*i], x[2*i+1] = v, v
	}
	j := &job{rate: 44100, s: sniffed{SampleRate: 44100, SamplesPerFrame: 1152, MidStream: true}}
	for _, chunk := range []int{2, 14, 1000, 4610, len(x)} {
		var got []float32
		w := newWarmup(j, func(y []float32) { got = append(got, y...) })
		for i := 0; i < len(x); i += chunk {
			w.Write(x[i:min(i+chunk, len(x))])
		}
		w.Flush()
		if w.dropped != 2304+576 || len(got) != len(x)-2*w.dropped {
			t.Errorf("chunks of %d: dropped %d frames, passed on %d, want 2880 and %d", chunk, w.dropped, len(got)/2, len(x)/2-2880)
		}
	}
	// Not cut mid-stream: nothing is dropped, even a silent start.
	j.s.MidStream = false
	var n int
	w := newWarmup(j, func(y []float32) { n += len(y) })
	w.Write(x)
	w.Flush()
	if w.dropped != 0 || n != len(x) {
		t.Errorf("whole stream: dropped %d", w.dropped)
	}
}

func slogTo(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

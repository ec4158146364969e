package player

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFrameHeader(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want FrameHeader
		err  string
	}{
		{"mpeg1 l3 128k 44.1 joint", []byte{0xFF, 0xFB, 0x90, 0x64},
			FrameHeader{Version: MPEG1, Layer: 3, Bitrate: 128, SampleRate: 44100, Mode: ModeJointStereo, SamplesPerFrame: 1152, Length: 417}, ""},
		{"padded", []byte{0xFF, 0xFB, 0x92, 0x64},
			FrameHeader{Version: MPEG1, Layer: 3, Bitrate: 128, SampleRate: 44100, Padding: true, Mode: ModeJointStereo, SamplesPerFrame: 1152, Length: 418}, ""},
		{"crc 320k 48k mono", []byte{0xFF, 0xFA, 0xE4, 0xC0},
			FrameHeader{Version: MPEG1, Layer: 3, Protected: true, Bitrate: 320, SampleRate: 48000, Mode: ModeMono, SamplesPerFrame: 1152, Length: 960}, ""},
		{"mpeg2 l3 32k 22.05", []byte{0xFF, 0xF3, 0x40, 0xC0},
			FrameHeader{Version: MPEG2, Layer: 3, Bitrate: 32, SampleRate: 22050, Mode: ModeMono, SamplesPerFrame: 576, Length: 104}, ""},
		{"mpeg2.5 l3 16k 8k", []byte{0xFF, 0xE3, 0x28, 0xC0},
			FrameHeader{Version: MPEG25, Layer: 3, Bitrate: 16, SampleRate: 8000, Mode: ModeMono, SamplesPerFrame: 576, Length: 144}, ""},
		{"mpeg1 l2 192k", []byte{0xFF, 0xFD, 0xA0, 0x04},
			FrameHeader{Version: MPEG1, Layer: 2, Bitrate: 192, SampleRate: 44100, Mode: ModeStereo, SamplesPerFrame: 1152, Length: 626}, ""},
		{"mpeg1 l1 448k 32k", []byte{0xFF, 0xFF, 0xE8, 0x00},
			FrameHeader{Version: MPEG1, Layer: 1, Bitrate: 448, SampleRate: 32000, Mode: ModeStereo, SamplesPerFrame: 384, Length: 672}, ""},
		{"free format", []byte{0xFF, 0xFB, 0x00, 0x64},
			FrameHeader{Version: MPEG1, Layer: 3, Bitrate: 0, SampleRate: 44100, Mode: ModeJointStereo, SamplesPerFrame: 1152, Length: 0}, ""},
		{"bad bitrate", []byte{0xFF, 0xFB, 0xF0, 0x64}, FrameHeader{}, "bad bitrate"},
		{"reserved rate", []byte{0xFF, 0xFB, 0x9C, 0x64}, FrameHeader{}, "reserved sample rate"},
		{"reserved version", []byte{0xFF, 0xEB, 0x90, 0x64}, FrameHeader{}, "reserved version"},
		{"reserved layer", []byte{0xFF, 0xF9, 0x90, 0x64}, FrameHeader{}, "reserved layer"},
		{"reserved emphasis", []byte{0xFF, 0xFB, 0x90, 0x66}, FrameHeader{}, "reserved emphasis"},
		{"no sync", []byte{0x49, 0x44, 0x33, 0x04}, FrameHeader{}, "no sync"},
		{"short", []byte{0xFF, 0xFB}, FrameHeader{}, "2 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFrameHeader(tt.b)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrNoFrameHeader) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// tagFrame builds a first frame with header hdr carrying a Xing/Info tag
// after the side info, and a LAME extension when enc is not empty. Two
// plain frames follow, so the first frame is confirmed as in a real file.
type tagSpec struct {
	hdr            [4]byte
	id             string // "Xing" or "Info"
	flags          uint32
	frames, nbytes uint32
	scale          uint32
	enc            string
	delay, padding int
	cut            int // if > 0, truncate the file to this many bytes
}

func (s tagSpec) build(t testing.TB) []byte {
	h, err := ParseFrameHeader(s.hdr[:])
	if err != nil {
		t.Fatal(err)
	}
	f := make([]byte, h.Length)
	copy(f, s.hdr[:])
	p := 4 + h.sideInfoSize()
	copy(f[p:], s.id)
	binary.BigEndian.PutUint32(f[p+4:], s.flags)
	p += 8
	if s.flags&1 != 0 {
		binary.BigEndian.PutUint32(f[p:], s.frames)
		p += 4
	}
	if s.flags&2 != 0 {
		binary.BigEndian.PutUint32(f[p:], s.nbytes)
		p += 4
	}
	if s.flags&4 != 0 {
		for i := 0; i < 100; i++ {
			f[p+i] = byte(i * 2)
		}
		p += 100
	}
	if s.flags&8 != 0 {
		binary.BigEndian.PutUint32(f[p:], s.scale)
		p += 4
	}
	if s.enc != "" {
		copy(f[p:], s.enc)
		f[p+21] = byte(s.delay >> 4)
		f[p+22] = byte(s.delay<<4) | byte(s.padding>>8)
		f[p+23] = byte(s.padding)
	}
	plain := make([]byte, h.Length)
	copy(plain, s.hdr[:])
	out := append(append(f, plain...), plain...)
	if s.cut > 0 {
		out = out[:s.cut]
	}
	return out
}

var (
	hdrV1Joint  = [4]byte{0xFF, 0xFB, 0x90, 0x64}
	hdrV1Mono   = [4]byte{0xFF, 0xFB, 0x90, 0xC4}
	hdrV2Stereo = [4]byte{0xFF, 0xF3, 0x90, 0x44} // MPEG-2 L3 80k 22.05 joint
)

func TestParseInfoTag(t *testing.T) {
	tests := []struct {
		name string
		spec tagSpec
		want MP3Info // only the tag fields are compared
	}{
		{"info+lame", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 15, frames: 100, nbytes: 41700, scale: 57, enc: "LAME3.100", delay: 576, padding: 1260},
			MP3Info{HasInfoTag: true, InfoTag: "Info", Frames: 100, Bytes: 41700, HasTOC: true, VBRScale: 57, Encoder: "LAME3.100", Gapless: true, EncoderDelay: 576, Padding: 1260, TotalSamples: 100*1152 - 576 - 1260}},
		{"xing frames only", tagSpec{hdr: hdrV1Joint, id: "Xing", flags: 1, frames: 50, enc: "LAME3.99r", delay: 576, padding: 600},
			MP3Info{HasInfoTag: true, InfoTag: "Xing", Frames: 50, VBRScale: -1, Encoder: "LAME3.99r", Gapless: true, EncoderDelay: 576, Padding: 600, TotalSamples: 50*1152 - 1176}},
		{"mono offset", tagSpec{hdr: hdrV1Mono, id: "Info", flags: 1, frames: 10, enc: "Lavc60.31", delay: 1105, padding: 4095},
			MP3Info{HasInfoTag: true, InfoTag: "Info", Frames: 10, VBRScale: -1, Encoder: "Lavc60.31", Gapless: true, EncoderDelay: 1105, Padding: 4095, TotalSamples: 11520 - 5200}},
		{"mpeg2 offset", tagSpec{hdr: hdrV2Stereo, id: "Xing", flags: 1, frames: 40, enc: "LAME3.100", delay: 576, padding: 1000},
			MP3Info{HasInfoTag: true, InfoTag: "Xing", Frames: 40, VBRScale: -1, Encoder: "LAME3.100", Gapless: true, EncoderDelay: 576, Padding: 1000, TotalSamples: 40*576 - 1576}},
		{"unknown encoder", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 10, enc: "GOGO1.0", delay: 576, padding: 600},
			MP3Info{HasInfoTag: true, InfoTag: "Info", Frames: 10, VBRScale: -1, TotalSamples: 11520}},
		{"no lame extension", tagSpec{hdr: hdrV1Joint, id: "Xing", flags: 3, frames: 10, nbytes: 4170},
			MP3Info{HasInfoTag: true, InfoTag: "Xing", Frames: 10, Bytes: 4170, VBRScale: -1, TotalSamples: 11520}},
		{"delay past the end", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 2, enc: "LAME3.100", delay: 2000, padding: 1000},
			MP3Info{HasInfoTag: true, InfoTag: "Info", Frames: 2, VBRScale: -1, Encoder: "LAME3.100", TotalSamples: 2304}},
		{"zero frames", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 0, enc: "LAME3.100", delay: 576, padding: 600},
			MP3Info{HasInfoTag: true, InfoTag: "Info", VBRScale: -1, Encoder: "LAME3.100"}},
		{"bad scale ignored", tagSpec{hdr: hdrV1Joint, id: "Xing", flags: 8, scale: 1000},
			MP3Info{HasInfoTag: true, InfoTag: "Xing", VBRScale: -1}},
		{"cut inside the toc", tagSpec{hdr: hdrV1Joint, id: "Info", flags: 15, frames: 9, nbytes: 9, cut: 36 + 8 + 8 + 50},
			MP3Info{HasInfoTag: true, InfoTag: "Info", Frames: 9, Bytes: 9, VBRScale: -1, TotalSamples: 9 * 1152}},
		{"no tag", tagSpec{hdr: hdrV1Joint, id: "abcd"}, MP3Info{VBRScale: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseMP3Info(tt.spec.build(t))
			if err != nil {
				t.Fatal(err)
			}
			got := MP3Info{HasInfoTag: info.HasInfoTag, InfoTag: info.InfoTag, Frames: info.Frames, Bytes: info.Bytes,
				HasTOC: info.HasTOC, VBRScale: info.VBRScale, Encoder: info.Encoder, Gapless: info.Gapless,
				EncoderDelay: info.EncoderDelay, Padding: info.Padding, TotalSamples: info.TotalSamples}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseVBRI(t *testing.T) {
	f := make([]byte, 417*3)
	for i := 0; i < 3; i++ {
		copy(f[i*417:], hdrV1Joint[:])
	}
	copy(f[36:], "VBRI")
	binary.BigEndian.PutUint32(f[36+10:], 123456)
	binary.BigEndian.PutUint32(f[36+14:], 301)
	info, err := ParseMP3Info(f)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasInfoTag || info.InfoTag != "VBRI" || info.Frames != 300 || info.Bytes != 123456 || info.Gapless {
		t.Fatalf("%+v", info)
	}
}

func TestParseFindsFirstFrame(t *testing.T) {
	good := tagSpec{hdr: hdrV1Joint, id: "Info", flags: 1, frames: 2, enc: "LAME3.100", delay: 576, padding: 600}.build(t)
	id3 := func(size int, footer bool) []byte {
		flags := byte(0)
		if footer {
			flags = 0x10
		}
		b := []byte{'I', 'D', '3', 4, 0, flags, byte(size >> 21 & 0x7F), byte(size >> 14 & 0x7F), byte(size >> 7 & 0x7F), byte(size & 0x7F)}
		b = append(b, make([]byte, size)...)
		if footer {
			b = append(b, []byte("3DI\x04\x00\x10\x00\x00\x00\x00")...)
		}
		return b
	}
	// A false sync: a valid-looking header whose "next frame" is junk.
	falseSync := append([]byte{0x00, 0xFF, 0xFB, 0x90, 0x64}, bytes.Repeat([]byte{0x55}, 600)...)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		data   []byte
		offset int64
		err    string
	}{
		{"plain", good, 0, ""},
		{"id3v2", cat(id3(1000, false), good), 1010, ""},
		{"id3v2 with footer", cat(id3(100, true), good), 120, ""},
		{"two id3v2 tags", cat(id3(10, false), id3(20, false), good), 50, ""},
		{"junk and a false sync first", cat(falseSync, good), int64(len(falseSync)), ""},
		{"forged id3 size", cat([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), good), 0, "past the end"},
		{"nothing", bytes.Repeat([]byte{0}, 5000), 0, "no MPEG audio frame"},
		{"empty", nil, 0, "no MPEG audio frame"},
		{"one truncated frame", good[:200], 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseMP3Info(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.AudioOffset != tt.offset {
				t.Fatalf("first frame at %d, want %d", info.AudioOffset, tt.offset)
			}
		})
	}
}

func TestParseRandomBytesFindsNoFrame(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	for seed := 0; seed < 20; seed++ {
		b := make([]byte, 50_000)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		if info, err := ParseMP3Info(b); !errors.Is(err, ErrNoAudioFrame) {
			t.Errorf("random file %d: %+v, %v", seed, info, err)
		}
	}
}

// TestMP3InfoRealFiles parses what lame and ffmpeg write and checks what
// the direct backend refuses and why.
func TestMP3InfoRealFiles(t *testing.T) {
	needMP3Tools(t, "lame", "ffmpeg")
	dir := t.TempDir()
	src := testSinePCM(testTrackFrames, testPeriod, testAmp)
	raw := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(raw, src, 0o644); err != nil {
		t.Fatal(err)
	}
	lame := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		a := append([]string{"--quiet", "-r", "-s", "44.1", "--bitwidth", "16", "--signed", "--little-endian"}, args...)
		runTool(t, "lame", append(a, raw, out)...)
		return out
	}
	ffmpeg := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		a := append([]string{"-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", "44100", "-ac", "2", "-i", raw}, args...)
		runTool(t, "ffmpeg", append(a, out)...)
		return out
	}
	exact := time.Duration(testTrackFrames) * time.Second / SampleRate
	tests := []struct {
		name    string
		path    string
		check   func(MP3Info) bool
		refused string
	}{
		{"lame cbr", lame("cbr.mp3", "-b", "128"), func(i MP3Info) bool {
			return i.Version == MPEG1 && i.Layer == 3 && i.SampleRate == 44100 && i.Channels == 2 && i.Bitrate == 128 &&
				i.InfoTag == "Info" && i.Encoder == "LAME3.100" && i.Gapless && i.EncoderDelay == 576 &&
				i.TotalSamples == testTrackFrames && i.Duration == exact && i.AudioOffset == 0
		}, ""},
		{"lame vbr", lame("vbr.mp3", "-V2"), func(i MP3Info) bool {
			return i.InfoTag == "Xing" && i.HasTOC && i.Gapless && i.TotalSamples == testTrackFrames && i.VBRScale >= 0
		}, ""},
		{"lame no tag", lame("notag.mp3", "-t"), func(i MP3Info) bool {
			return !i.HasInfoTag && !i.Gapless && i.TotalSamples == 0 && i.Duration > exact/2
		}, ""},
		{"lame id3v2", lame("id3.mp3", "--id3v2-only", "--tt", "Hold the line"), func(i MP3Info) bool {
			return i.AudioOffset > 10 && i.Gapless && i.TotalSamples == testTrackFrames
		}, ""},
		{"lame mono", lame("mono.mp3", "-a", "-m", "m", "-b", "64"), func(i MP3Info) bool {
			return i.Channels == 1 && i.Mode == ModeMono && i.Gapless && i.TotalSamples == testTrackFrames
		}, ""},
		{"ffmpeg lavc", ffmpeg("lavc.mp3", "-c:a", "libmp3lame", "-b:a", "128k"), func(i MP3Info) bool {
			return strings.HasPrefix(i.Encoder, "Lavc") && i.Gapless && i.TotalSamples == testTrackFrames && i.AudioOffset > 0
		}, ""},
		{"lsf 22.05", lame("lsf.mp3", "--resample", "22.05", "-b", "64"), func(i MP3Info) bool {
			return i.Version == MPEG2 && i.SampleRate == 22050 && i.SamplesPerFrame == 576
		}, "go-mp3 decodes MPEG-2 Layer III incorrectly"},
		{"mpeg2.5 8k", lame("8k.mp3", "--resample", "8", "-b", "16"), func(i MP3Info) bool {
			return i.Version == MPEG25 && i.SampleRate == 8000
		}, "MPEG-2.5"},
		{"32 kHz", lame("32k.mp3", "--resample", "32", "-b", "128"), func(i MP3Info) bool {
			return i.Version == MPEG1 && i.SampleRate == 32000
		}, "sample rate 32000 Hz"},
		{"free format", lame("free.mp3", "--freeformat", "-b", "400"), func(i MP3Info) bool {
			return i.FreeFormat && i.Version == MPEG1 && i.Bitrate == 0
		}, "free-format"},
		{"layer ii", ffmpeg("l2.mp2", "-c:a", "mp2", "-b:a", "192k"), func(i MP3Info) bool {
			return i.Layer == 2 && i.Bitrate == 192 && !i.HasInfoTag
		}, "Layer II"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := mustMP3Info(t, tt.path)
			if !tt.check(info) {
				t.Errorf("unexpected info: %+v", info)
			}
			err := CheckPlayable(info)
			switch {
			case tt.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("CheckPlayable = %v, want a refusal mentioning %q", err, tt.refused)
			}
		})
	}
}

// FuzzParseMP3Info: the parser (and the decoder behind it, with its
// panics caught as the direct backend catches them) never panics, and
// what it accepts is self-consistent.
func FuzzParseMP3Info(f *testing.F) {
	f.Add(FallbackMP3[:2048])
	f.Add(tagSpec{hdr: hdrV1Joint, id: "Info", flags: 15, frames: 2, nbytes: 1251, scale: 57, enc: "LAME3.100", delay: 576, padding: 600}.build(f))
	f.Add(tagSpec{hdr: hdrV2Stereo, id: "Xing", flags: 1, frames: 3, enc: "Lavc", delay: 1, padding: 2}.build(f))
	f.Add([]byte("ID3\x04\x00\x10\x00\x00\x00\x05\x00\x00\x00\x00\x003DI\x04\x00\x10\x00\x00\x00\x05\xff\xfb\x90\x64"))
	f.Add([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f\xff\xfb\x90\x64"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseMP3Info(data)
		if err != nil {
			return
		}
		if info.AudioOffset < 0 || info.AudioOffset >= int64(len(data)) {
			t.Fatalf("audio offset %d outside a %d-byte file", info.AudioOffset, len(data))
		}
		if info.Layer < 1 || info.Layer > 3 || info.SampleRate < 8000 || info.SampleRate > 48000 || info.TotalSamples < 0 {
			t.Fatalf("implausible info %+v", info)
		}
		if info.Gapless && info.TotalSamples != info.Frames*int64(info.SamplesPerFrame)-int64(info.EncoderDelay+info.Padding) {
			t.Fatalf("inconsistent totals %+v", info)
		}
		if CheckPlayable(info) != nil {
			return
		}
		g, err := newGaplessRecovering(bytes.NewReader(data), int64(len(data)), info)
		if err != nil {
			return
		}
		// A few frames' worth: enough to run the trimming, cheap enough
		// for many executions a second.
		buf := make([]byte, 4096)
		for i := 0; i < 8; i++ {
			if _, err := readRecovering(g, buf); err != nil {
				break
			}
		}
		if info.Gapless && g.Frames() > info.TotalSamples {
			t.Fatalf("decoded %d frames, the tag says %d", g.Frames(), info.TotalSamples)
		}
	})
}

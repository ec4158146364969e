package player

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/mp3"
)

// ParseMP3Info parses an MP3 held in memory, for the tests that check what
// the direct backend makes of a file.
func ParseMP3Info(b []byte) (MP3Info, error) { return mp3.ParseInfo(b) }

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
			return i.Version == mp3.MPEG1 && i.Layer == 3 && i.SampleRate == 44100 && i.Channels == 2 && i.Bitrate == 128 &&
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
			return i.Channels == 1 && i.Mode == mp3.ModeMono && i.Gapless && i.TotalSamples == testTrackFrames
		}, ""},
		{"ffmpeg lavc", ffmpeg("lavc.mp3", "-c:a", "libmp3lame", "-b:a", "128k"), func(i MP3Info) bool {
			return strings.HasPrefix(i.Encoder, "Lavc") && i.Gapless && i.TotalSamples == testTrackFrames && i.AudioOffset > 0
		}, ""},
		{"lsf 22.05", lame("lsf.mp3", "--resample", "22.05", "-b", "64"), func(i MP3Info) bool {
			return i.Version == mp3.MPEG2 && i.SampleRate == 22050 && i.SamplesPerFrame == 576
		}, "go-mp3 decodes MPEG-2 Layer III incorrectly"},
		{"mpeg2.5 8k", lame("8k.mp3", "--resample", "8", "-b", "16"), func(i MP3Info) bool {
			return i.Version == mp3.MPEG25 && i.SampleRate == 8000
		}, "MPEG-2.5"},
		{"32 kHz", lame("32k.mp3", "--resample", "32", "-b", "128"), func(i MP3Info) bool {
			return i.Version == mp3.MPEG1 && i.SampleRate == 32000
		}, "sample rate 32000 Hz"},
		{"free format", lame("free.mp3", "--freeformat", "-b", "400"), func(i MP3Info) bool {
			return i.FreeFormat && i.Version == mp3.MPEG1 && i.Bitrate == 0
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

// FuzzGapless: what the parser accepts and CheckPlayable lets through
// goes to the decoder, with its panics caught as the direct backend
// catches them, and the trimming never returns more than the tag's length.
// The parser's own invariants are FuzzReadInfo's, in internal/mp3.
func FuzzGapless(f *testing.F) {
	f.Add(FallbackMP3[:2048])
	f.Add(FallbackMP3[:8192])
	f.Add([]byte("ID3\x04\x00\x10\x00\x00\x00\x05\x00\x00\x00\x00\x003DI\x04\x00\x10\x00\x00\x00\x05\xff\xfb\x90\x64"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseMP3Info(data)
		if err != nil || CheckPlayable(info) != nil {
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

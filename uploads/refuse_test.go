package uploads

import (
	"archive/zip"
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storeFiles lists every file in the store except the index, so a test can
// show that a refused upload left nothing behind.
func storeFiles(t *testing.T, l *Library) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(l.store, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != l.index {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cut := func(src string, keep float64) []byte {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		return b[:int(float64(len(b))*keep)]
	}
	five := filepath.Join(dir, "five.wav")
	writeWAV16(t, five, 44100, 2, sine(44100, 2, 5, 441, -20))
	mp3 := filepath.Join(dir, "five.mp3")
	run(t, "lame", "--silent", "-b", "128", five, mp3)
	flac := filepath.Join(dir, "five.flac")
	run(t, "sox", five, flac)
	ogg := filepath.Join(dir, "five.ogg")
	run(t, "sox", five, ogg)
	adpcm := filepath.Join(dir, "adpcm.wav")
	run(t, "sox", five, "-e", "ima-adpcm", adpcm)
	m4a := filepath.Join(dir, "a.m4a")
	run(t, "ffmpeg", "-loglevel", "error", "-i", five, "-c:a", "aac", m4a)
	opus := filepath.Join(dir, "a.opus")
	run(t, "ffmpeg", "-loglevel", "error", "-i", five, "-c:a", "libopus", "-f", "ogg", opus)
	short := filepath.Join(dir, "short.wav")
	writeWAV16(t, short, 44100, 2, sine(44100, 2, 0.5, 441, -20))
	silent := filepath.Join(dir, "silent.wav")
	writeWAV16(t, silent, 44100, 2, make([]float32, 44100*2*2))
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, _ := zw.Create("hold.mp3")
	w.Write(cut(mp3, 1))
	zw.Close()
	random := make([]byte, 256<<10)
	rnd := rand.New(rand.NewPCG(42, 42))
	for i := range random {
		random[i] = byte(rnd.UintN(256))
	}
	forgedID3 := append([]byte("ID3\x03\x00\x00\x7f\x7f\x7f\x7f"), cut(mp3, 1)...)
	badID3 := append([]byte("ID3\x03\x00\x00\x00\x80\x00\x00"), cut(mp3, 1)...)

	cases := []struct {
		name   string
		path   string
		edit   func(*Options)
		code   string
		phrase string
	}{
		{"empty", file("empty.mp3", nil), nil, CodeEmpty, "empty"},
		{"text", file("notes.mp3", []byte("Please play this on hold.\nThanks!\n")), nil, CodeNotAudio, "plain text"},
		{"html error page", file("track.mp3", []byte("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>")), nil, CodeNotAudio, "HTML"},
		{"zip", file("tracks.mp3", zipped.Bytes()), nil, CodeNotAudio, "ZIP archive"},
		{"pdf", file("doc.mp3", []byte("%PDF-1.4\n%âãÏÓ\n1 0 obj\n")), nil, CodeNotAudio, "PDF"},
		{"png", file("pic.mp3", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")), nil, CodeNotAudio, "PNG image"},
		{"random bytes", file("noise.mp3", random), nil, CodeNotAudio, "random bytes"},
		{"zeros", file("zeros.wav", make([]byte, 10000)), nil, CodeNotAudio, "zero bytes"},
		{"forged ID3 size", file("forged.mp3", forgedID3), nil, CodeCorrupt, "ID3 tag claims 268435465 bytes"},
		{"ID3 size not syncsafe", file("bad.mp3", badID3), nil, CodeCorrupt, "damaged ID3 tag"},
		{"truncated MP3", file("cut.mp3", cut(mp3, 0.5)), nil, CodeTruncated, "the audio ends at 2."},
		{"truncated WAV", file("cut.wav", cut(five, 0.4)), nil, CodeTruncated, "the audio ends at 2.0 s of the 5.0 s"},
		{"truncated FLAC", file("cut.flac", cut(flac, 0.5)), nil, CodeTruncated, "of the 5.0 s its header announces"},
		{"truncated Ogg", file("cut.ogg", cut(ogg, 0.5)), nil, CodeTruncated, "the audio ends at"},
		{"too short", short, nil, CodeTooShort, "only 0.50 s long"},
		{"too long", five, func(o *Options) { o.MaxDuration = 3 * time.Second }, CodeTooLong, "5.0 s long; the limit is 3.0 s"},
		{"too large", five, func(o *Options) { o.MaxBytes = 100 << 10 }, CodeTooLarge, "larger than the 0.1 MiB limit"},
		{"ADPCM WAV", adpcm, nil, CodeUnsupportedCodec, "IMA ADPCM"},
		{"AAC in MP4", m4a, nil, CodeUnsupportedCodec, "MP4/M4A"},
		{"Ogg Opus", opus, nil, CodeUnsupportedCodec, "Opus"},
		{"silence", silent, nil, CodeSilent, "silent"},
		{"disk full", five, func(o *Options) {
			o.Statfs = func(string) (uint64, uint64, error) { return 50 << 20, 8 << 30, nil }
		}, CodeDiskFull, "50.0 MiB free"},
		{"disk fills during the encode", five, func(o *Options) {
			o.MinFreeBytes = 1 << 20
			o.Statfs = func(string) (uint64, uint64, error) { return 1<<20 + 100<<10, 8 << 30, nil }
		}, CodeDiskFull, "needed for this track"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := testLib(t, c.edit)
			_, _, err := ingestFile(t, l, c.path)
			rf, ok := AsRefusal(err)
			if !ok {
				t.Fatalf("got %v, want a %s refusal", err, c.code)
			}
			if rf.Code != c.code || !strings.Contains(rf.Message, c.phrase) {
				t.Errorf("got %s %q, want %s containing %q", rf.Code, rf.Message, c.code, c.phrase)
			}
			if left := storeFiles(t, l); len(left) > 0 || len(l.Tracks()) > 0 {
				t.Errorf("refused upload left %v, tracks %v", left, l.Tracks())
			}
			t.Logf("%s: %s", rf.Code, rf.Message)
		})
	}
}

func TestIngestCancelled(t *testing.T) {
	l := testLib(t, nil)
	p := filepath.Join(t.TempDir(), "a.wav")
	writeWAV16(t, p, 44100, 2, sine(44100, 2, 10, 441, -20))
	f, _ := os.Open(p)
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	_, _, err := l.Ingest(ctx, "a.wav", f, func(p Progress) {
		if p.Stage == "encoding" && p.Fraction > 0.1 {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("cancelled ingest succeeded")
	}
	if left := storeFiles(t, l); len(left) > 0 {
		t.Errorf("cancelled ingest left %v", left)
	}
}

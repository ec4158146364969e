package uploads

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSniff feeds arbitrary bytes to the cheap checks that run on every
// upload before any decoder: they must never panic, never allocate by a
// size field, and either name the file or refuse it with a reason.
func FuzzSniff(f *testing.F) {
	dir := f.TempDir()
	wav := filepath.Join(dir, "s.wav")
	writeWAV16(f, wav, 22050, 1, sine(22050, 1, 0.3, 441, -20))
	seeds := []string{wav}
	for _, c := range [][]string{
		{"lame", "--silent", "-b", "32", wav, filepath.Join(dir, "a.mp3")},
		{"lame", "--silent", "-V", "2", "--add-id3v2", "--tt", "x", wav, filepath.Join(dir, "b.mp3")},
		{"sox", wav, filepath.Join(dir, "c.flac")},
		{"sox", wav, filepath.Join(dir, "d.ogg")},
		{"sox", wav, "-r", "8000", filepath.Join(dir, "e.mp3")},
	} {
		run(f, c[0], c[1:]...)
		seeds = append(seeds, c[len(c)-1])
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("ID3\x04\x00\x10\x7f\x7f\x7f\x7f"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00"))
	f.Add([]byte("OggS\x00\x02"))
	f.Add([]byte("\xff\xfb\x90\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := sniff(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			rf, ok := AsRefusal(err)
			if !ok || rf.Code == "" || rf.Message == "" {
				t.Fatalf("sniff error %v is not a refusal with a reason", err)
			}
			return
		}
		if s.Format == "" || s.Detail == "" || s.SampleRate < 1000 || s.Channels < 1 || s.EstSeconds < 0 || s.DeclaredSamples < 0 {
			t.Fatalf("accepted with implausible result %+v", s)
		}
	})
}

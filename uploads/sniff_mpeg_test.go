package uploads

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mohproject/moh/internal/mp3"
)

// vbriMP3 writes an MP3 whose first frame is a Fraunhofer VBRI tag, as
// Fraunhofer encoders write it (lame writes none): lame's untagged frames
// behind a silent frame that carries the VBRI header with the frame count,
// its own frame included.
func vbriMP3(t *testing.T, dir, wav string) string {
	t.Helper()
	plain := filepath.Join(dir, "plain.mp3")
	run(t, "lame", "--silent", "-t", "-b", "128", wav, plain)
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	h, err := mp3.ParseFrameHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	frames := int64(len(b) / h.Length) // CBR 128 kbit/s: a whole number of frames, padding aside
	f := make([]byte, h.Length)
	copy(f, b[:4])
	f[2] &^= 2 // unpadded, so the frame is exactly h.Length long
	copy(f[36:], "VBRI\x00\x01")
	n := uint32(frames + 1)
	f[36+14], f[36+15], f[36+16], f[36+17] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	p := filepath.Join(dir, "vbri.mp3")
	if err := os.WriteFile(p, append(f, b...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSniffMPEGTags: the sniffer reads the info frame as the player does
// (one parser, internal/mp3), so the length it declares is the encoded
// length for what lame -p (CRC) and ffmpeg write, and a VBRI file is not
// taken for a cut one. Before the parsers were one, the sniffer looked for
// the tag of a CRC frame 2 bytes too far, trusted only "LAME" extensions,
// and counted the VBRI frame twice, so it refused every VBRI file as cut
// off.
func TestSniffMPEGTags(t *testing.T) {
	dir := t.TempDir()
	wav := sineWAV(t, dir, 44100, 2, -20) // 2 s
	const want = 2 * 44100
	crc := filepath.Join(dir, "crc.mp3")
	run(t, "lame", "--silent", "-p", "-b", "128", wav, crc)
	lavc := filepath.Join(dir, "lavc.mp3")
	run(t, "ffmpeg", "-loglevel", "error", "-i", wav, "-c:a", "libmp3lame", "-b:a", "128k", lavc)
	for _, tc := range []struct {
		name     string
		path     string
		declared int64
	}{
		{"lame -p", crc, want},
		{"ffmpeg libmp3lame", lavc, want},
		{"VBRI", vbriMP3(t, dir, wav), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sniff(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != "mp3" || s.Truncated || tc.declared >= 0 && s.DeclaredSamples != tc.declared {
				t.Fatalf("%+v, want an mp3 of %d samples, not truncated", s, tc.declared)
			}
		})
	}
}

// TestIngestVBRI: a VBRI file goes through the whole ingest.
func TestIngestVBRI(t *testing.T) {
	dir := t.TempDir()
	l := testLib(t, nil)
	tr, _, err := ingestFile(t, l, vbriMP3(t, dir, sineWAV(t, dir, 44100, 2, -20)))
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if tr.Format != "mp3" || tr.Duration.Seconds() < 1.9 {
		t.Fatalf("track %+v", tr)
	}
}

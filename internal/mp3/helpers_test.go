package mp3

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// encode writes frames of a 441 Hz stereo sine at 44.1 kHz and encodes
// them with tool ("lame" or "ffmpeg") and its extra arguments, returning
// the file's bytes. lame and ffmpeg are test dependencies of moh.
func encode(t testing.TB, frames int, tool string, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	raw := make([]byte, 4*frames)
	for i := range frames {
		v := int16(8000 * math.Sin(2*math.Pi*441*float64(i)/44100))
		binary.LittleEndian.PutUint16(raw[4*i:], uint16(v))
		binary.LittleEndian.PutUint16(raw[4*i+2:], uint16(v))
	}
	in, out := filepath.Join(dir, "src.raw"), filepath.Join(dir, "out.mp3")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch tool {
	case "lame":
		a := append([]string{"--quiet", "-r", "-s", "44.1", "--bitwidth", "16", "--signed", "--little-endian"}, args...)
		cmd = exec.Command("lame", append(a, in, out)...)
	case "ffmpeg":
		a := append([]string{"-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", "44100", "-ac", "2", "-i", in}, args...)
		cmd = exec.Command("ffmpeg", append(a, out)...)
	default:
		t.Fatalf("unknown tool %s", tool)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cbr builds n plain frames with header hdr (its Length must be known).
func cbr(t testing.TB, hdr [4]byte, n int) []byte {
	t.Helper()
	h, err := parseHeader(hdr[:], true)
	if err != nil || h.Length == 0 {
		t.Fatalf("cbr: header % x: %v", hdr, err)
	}
	f := make([]byte, h.Length)
	copy(f, hdr[:])
	var out []byte
	for range n {
		out = append(out, f...)
	}
	return out
}

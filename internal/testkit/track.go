package testkit

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// SineWAV writes secs seconds of a freq Hz sine at amplitude vol (0..1)
// as 44.1 kHz 16-bit stereo WAV with the real sox.
func SineWAV(t testing.TB, path string, secs float64, freq int, vol float64) {
	t.Helper()
	if out, err := exec.Command("sox", "-n", "-r", "44100", "-c", "2", "-b", "16", path,
		"synth", strconv.FormatFloat(secs, 'f', -1, 64), "sine", strconv.Itoa(freq), "vol", strconv.FormatFloat(vol, 'f', -1, 64)).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
}

// SineMP3 writes the same sine as a CBR MP3 of kbps kbit/s, encoded by
// the real lame (the WAV goes to a temp dir of its own).
func SineMP3(t testing.TB, path string, secs float64, freq int, vol float64, kbps int) {
	t.Helper()
	wav := filepath.Join(t.TempDir(), "sine.wav")
	SineWAV(t, wav, secs, freq, vol)
	if out, err := exec.Command("lame", "--quiet", "-b", fmt.Sprint(kbps), wav, path).CombinedOutput(); err != nil {
		t.Fatalf("lame: %v %s", err, out)
	}
}

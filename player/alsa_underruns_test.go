package player

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUnderrunCounter: every "underrun!!!" aplay prints counts once,
// also when a write splits it, and other lines do not count.
func TestUnderrunCounter(t *testing.T) {
	before := ALSAUnderruns()
	var u underrunCounter
	for _, w := range []string{
		"underrun!!! (at least 1.2 ms long)\n",
		"under", "run!!! (at least 3 ms long)\nunderrun!", "!! (at least 4 ms long)\n",
		"overrun!!! (at least 1 ms long)\n", "aplay: pcm_write:2146: write error\n",
		"underrun!!!underrun!!!\n",
	} {
		if n, err := u.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := ALSAUnderruns() - before; got != 5 {
		t.Fatalf("counted %d underruns, want 5", got)
	}
}

// TestALSASinkCountsUnderruns: the sink counts what its aplay prints on
// stderr. The aplay is a script, since no sound card here can be made
// to run dry on cue; it prints what aplay prints, in two pieces.
func TestALSASinkCountsUnderruns(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "aplay")
	script := "#!/bin/sh\nprintf 'underrun!!! (at least 2.0 ms long)\\nunder' >&2\nsleep 0.05\nprintf 'run!!! (at least 1.0 ms long)\\n' >&2\nexec cat > /dev/null\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	before := ALSAUnderruns()
	s, err := OpenALSASink(context.Background(), "", ALSASinkOptions{Aplay: bin})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ALSAUnderruns()-before < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ALSAUnderruns() - before; got != 2 {
		t.Fatalf("counted %d underruns, want 2", got)
	}
}

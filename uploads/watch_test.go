package uploads

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, d, 20*time.Millisecond, what, cond)
}

func TestMusicFolder(t *testing.T) {
	var mu sync.Mutex
	var events []string
	music := t.TempDir()
	l := testLib(t, func(o *Options) {
		o.MusicDir = music
		o.OnEvent = func(kind, msg string) {
			mu.Lock()
			events = append(events, kind+": "+msg)
			mu.Unlock()
		}
	})
	testkit.Go(t, l.Run)

	// A slow copy: the WAV header announces 3 s from the first write, so
	// ingesting it half-way would be refused as truncated.
	src := filepath.Join(t.TempDir(), "src.wav")
	writeWAV16(t, src, 44100, 2, sine(44100, 2, 3, 441, -20))
	whole, _ := os.ReadFile(src)
	dst := filepath.Join(music, "Hold Music.wav")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	chunk := len(whole) / 8
	for i := 0; i < len(whole); i += chunk {
		f.Write(whole[i:min(i+chunk, len(whole))])
		time.Sleep(150 * time.Millisecond) // a copy slower than the poll interval, below the settle time
	}
	f.Close()
	copied := time.Now()
	waitFor(t, "the copied file to become a track and leave the folder", 10*time.Second, func() bool {
		_, err := os.Stat(dst)
		return len(l.Tracks()) == 1 && errors.Is(err, os.ErrNotExist)
	})
	t.Logf("copied file became a track %v after the copy finished", time.Since(copied).Round(time.Millisecond))
	if tr := l.Tracks()[0]; tr.Name != "Hold Music.wav" || tr.Duration != 3*time.Second {
		t.Errorf("track %+v", tr)
	}
	select {
	case <-l.Changes():
	case <-time.After(5 * time.Second):
		t.Error("no change signalled")
	}
	if r := l.Refused(); len(r) != 0 {
		t.Errorf("refused %+v while copying", r)
	}

	// A bad file is refused once, moved aside with its reason, and not retried.
	bad := filepath.Join(music, "readme.mp3")
	os.WriteFile(bad, []byte("this is not music\n"), 0o644)
	waitFor(t, "the bad file to be refused", 10*time.Second, func() bool { return len(l.Refused()) == 1 })
	r := l.Refused()[0]
	if r.Code != CodeNotAudio || r.Name != "readme.mp3" || r.MovedTo != filepath.Join(music, RefusedDir, "readme.mp3") {
		t.Errorf("refused %+v", r)
	}
	reason, err := os.ReadFile(r.MovedTo + ".txt")
	if err != nil || !strings.Contains(string(reason), "plain text") {
		t.Errorf("reason file: %q %v", reason, err)
	}
	// Several more polls: still one refusal, one event.
	time.Sleep(5 * l.opts.PollInterval)
	mu.Lock()
	defer mu.Unlock()
	if len(l.Refused()) != 1 || len(events) != 2 {
		t.Errorf("refusals %d, events %q: want 1 refusal, 2 events", len(l.Refused()), events)
	}
	if !strings.HasPrefix(events[0], "ingested: Hold Music.wav") || !strings.HasPrefix(events[1], "refused: readme.mp3") {
		t.Errorf("events %q", events)
	}
}

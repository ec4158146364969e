package player

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fhs/gompd/v2/mpd"
)

// needMPD skips nothing: mpd, sox and lame are test dependencies of moh
// (Debian packages mpd, sox, lame); a missing one is a failure.
func mpdNeedTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"mpd", "sox", "lame"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (Debian package %s is a test dependency): %v", tool, tool, err)
		}
	}
}

// mpdTone writes a LAME-encoded sine MP3 (freq 0: digital silence).
func mpdTone(t testing.TB, path string, seconds float64, freq int) {
	t.Helper()
	synth := []string{"-n", "-r", "44100", "-c", "2", "-b", "16", "-t", "wav", "-", "synth", wdFtoa(seconds), "sine", wdItoa(freq)}
	if freq == 0 {
		synth = []string{"-n", "-r", "44100", "-c", "2", "-b", "16", "-t", "wav", "-", "trim", "0", wdFtoa(seconds)}
	}
	sox := exec.Command("sox", synth...)
	lame := exec.Command("lame", "--quiet", "-b", "128", "-", path)
	pipe, err := sox.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lame.Stdin = pipe
	var soxErr strings.Builder
	sox.Stderr = &soxErr
	if err := lame.Start(); err != nil {
		t.Fatal(err)
	}
	if err := sox.Run(); err != nil && !strings.Contains(soxErr.String(), "WARN") {
		t.Fatalf("sox: %v: %s", err, soxErr.String())
	}
	if err := lame.Wait(); err != nil {
		t.Fatalf("lame: %v", err)
	}
}

func wdFtoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
func wdItoa(i int) string     { return strconv.Itoa(i) }

func wdTestLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// mpdFixture is an owned MPD backend on temp dirs with a few tone tracks.
type mpdFixture struct {
	m      *MPD
	dir    string
	music  string
	tracks []Track
	cancel context.CancelFunc
	done   chan error
}

func newMPDFixture(t testing.TB, o MPDOptions, ntracks int) *mpdFixture {
	t.Helper()
	mpdNeedTools(t)
	dir := t.TempDir()
	f := &mpdFixture{dir: dir, music: filepath.Join(dir, "music")}
	if err := os.MkdirAll(f.music, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range ntracks {
		p := filepath.Join(f.music, "tone"+wdItoa(i)+".mp3")
		mpdTone(t, p, 4, 330+110*i)
		f.tracks = append(f.tracks, Track{ID: "t" + wdItoa(i), Path: p, Name: filepath.Base(p)})
	}
	if o.Logger == nil {
		o.Logger = wdTestLogger(t)
	}
	if o.MusicDir == "" {
		o.MusicDir = f.music
	}
	if o.RunDir == "" {
		o.RunDir = filepath.Join(dir, "run")
	}
	if o.Output.Kind == "" {
		o.Output = Output{Kind: OutputNull}
	}
	m, err := NewMPD(o)
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	m.SetPlaylist(f.tracks)
	m.SetVolume(80)
	m.Play()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- m.Run(ctx) }()
	t.Cleanup(f.stop)
	return f
}

func (f *mpdFixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	<-f.done
	f.cancel = nil
}

// pollUntil polls cond until it holds or the timeout passes.
func pollUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// flowing reports audio reaching the output: frames advanced over the
// last call and the level is audible.
type mpdFlowProbe struct {
	b      Backend
	frames uint64
}

func (p *mpdFlowProbe) flowing() bool {
	st := p.b.Status()
	adv := st.Frames > p.frames
	p.frames = st.Frames
	return adv && st.State == StatePlaying && st.LevelDBFS > levelAudibleDBFS && st.Fault == ""
}

// client is another MPD client, as an admin's phone app would be.
func (f *mpdFixture) client(t testing.TB) *mpd.Client {
	t.Helper()
	c := f.dialClient(t)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialClient connects another client; the caller closes it.
func (f *mpdFixture) dialClient(t testing.TB) *mpd.Client {
	t.Helper()
	c, err := mpd.Dial("unix", filepath.Join(f.dir, "run", mpdSocketName))
	if err != nil {
		t.Fatalf("dial test client: %v", err)
	}
	return c
}

func TestMPDPlaysQueueInOrder(t *testing.T) {
	f := newMPDFixture(t, MPDOptions{}, 3)
	p := &mpdFlowProbe{b: f.m}
	pollUntil(t, 15*time.Second, "audio from mpd", func() bool { time.Sleep(100 * time.Millisecond); return p.flowing() })
	st := f.m.Status()
	if st.Track == nil || st.Track.ID != "t0" || st.Index != 0 {
		t.Fatalf("on air = %+v index %d, want t0 at 0", st.Track, st.Index)
	}
	c := f.client(t)
	items, err := c.PlaylistInfo(-1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("queue has %d entries, want 3", len(items))
	}
	for i, it := range items {
		if it["file"] != f.tracks[i].Path {
			t.Errorf("queue[%d] = %q, want %q", i, it["file"], f.tracks[i].Path)
		}
	}
	attrs, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"repeat": "1", "single": "0", "random": "0", "consume": "0", "volume": "80"} {
		if attrs[k] != v {
			t.Errorf("mpd %s = %q, want %q", k, attrs[k], v)
		}
	}
	t.Logf("level %.1f dBFS, frames %d", st.LevelDBFS, st.Frames)
}

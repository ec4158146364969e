package player

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fhs/gompd/v2/mpd"
	"github.com/mohproject/moh/internal/testkit"
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
	if o.RenditionDir == "" {
		o.RenditionDir = f.music
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
	return adv && st.State == StatePlaying && st.LevelDBFS > levelAudibleDBFS && st.Fault.IsZero()
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

func TestMPDConfigRender(t *testing.T) {
	for _, tc := range []struct {
		out  Output
		want []string
	}{
		{Output{Kind: OutputNull}, []string{`type "null"`, `sync "yes"`}},
		{Output{Kind: OutputALSA, Device: "hw:1,0"}, []string{`type "alsa"`, `device "hw:1,0"`}},
		{Output{Kind: OutputALSA}, []string{`type "alsa"`}},
		{Output{Kind: OutputFile, Path: `/run/moh/it's "odd".pcm`}, []string{`type "pipe"`, `command "exec cat >> '/run/moh/it'\\''s \"odd\".pcm'"`, `format "44100:16:2"`}},
	} {
		text, err := mpdConfig{RunDir: "/run/moh", Output: tc.out}.render()
		if err != nil {
			t.Fatalf("%+v: %v", tc.out, err)
		}
		for _, w := range append(tc.want,
			`music_directory "/run/moh/library"`, `db_file "/run/moh/mpd.db"`, `bind_to_address "/run/moh/mpd.sock"`,
			`auto_update "no"`, `zeroconf_enabled "no"`, `path "/run/moh/level.fifo"`, `mixer_type "software"`) {
			if !strings.Contains(text, w) {
				t.Errorf("%+v: config lacks %s:\n%s", tc.out, w, text)
			}
		}
		if strings.Contains(text, "state_file") {
			t.Errorf("config has a state_file (flash wear):\n%s", text)
		}
	}
	for _, bad := range []mpdConfig{
		{RunDir: ""},
		{RunDir: "/run/moh\nmusic_directory \"/\"", Output: Output{Kind: OutputNull}},
		{RunDir: "/run/moh", Output: Output{Kind: "cd"}},
	} {
		if _, err := bad.render(); err == nil {
			t.Errorf("render(%+v) accepted", bad)
		}
	}
}

// The owned MPD on each output kind: alsa (ALSA's null device), file
// (raw PCM appended by MPD's pipe output) and null all play and are paced
// in real time.
func TestMPDOutputs(t *testing.T) {
	if _, err := exec.LookPath("aplay"); err != nil {
		t.Fatalf("alsa-utils missing: %v", err)
	}
	pcm := filepath.Join(t.TempDir(), "line.pcm")
	for _, out := range []Output{{Kind: OutputALSA, Device: "null"}, {Kind: OutputFile, Path: pcm}, {Kind: OutputNull}} {
		t.Run(out.Kind, func(t *testing.T) {
			t.Parallel()
			f := newMPDFixture(t, MPDOptions{Output: out}, 1)
			p := &mpdFlowProbe{b: f.m}
			pollUntil(t, 15*time.Second, "audio", func() bool { time.Sleep(100 * time.Millisecond); return p.flowing() })
			f0, t0 := f.m.Status().Frames, time.Now()
			time.Sleep(2 * time.Second)
			rate := float64(f.m.Status().Frames-f0) / time.Since(t0).Seconds()
			t.Logf("%s: %.0f frames/s", out.Kind, rate)
			if rate < SampleRate*0.8 || rate > SampleRate*1.25 {
				t.Fatalf("%s output not paced in real time: %.0f frames/s", out.Kind, rate)
			}
			if out.Kind == OutputFile {
				fi, err := os.Stat(pcm)
				if err != nil || fi.Size() < SampleRate*BytesPerFrame {
					t.Fatalf("file output: %v, %d bytes", err, fi.Size())
				}
			}
		})
	}
}

// mohd not reading the level FIFO for a while — the machine loaded, or
// paused as a whole, after which MPD writes what it owes in one burst —
// must not lose audio from the count: MPD's fifo output throws away all
// the pipe holds when a write finds it full, and a default pipe holds
// only 0.37 s (measured: TestMPDOutputs at 24054–35266 frames/s on a
// loaded machine, a pipe's worth lost per stall).
func TestMPDLevelSurvivesReaderStall(t *testing.T) {
	f := newMPDFixture(t, MPDOptions{}, 1)
	p := &mpdFlowProbe{b: f.m}
	pollUntil(t, 15*time.Second, "audio", func() bool { time.Sleep(100 * time.Millisecond); return p.flowing() })
	time.Sleep(500 * time.Millisecond) // past MPD's start
	f0, t0 := f.m.Status().Frames, time.Now()
	// The level reader blocks in add: nothing drains the FIFO for 1.5 s,
	// four times what a default pipe holds.
	f.m.meter.mu.Lock()
	time.Sleep(1500 * time.Millisecond)
	f.m.meter.mu.Unlock()
	time.Sleep(time.Second)
	rate := float64(f.m.Status().Frames-f0) / time.Since(t0).Seconds()
	t.Logf("%.0f frames/s over a 1.5 s stall of the reader", rate)
	if rate < SampleRate*0.9 || rate > SampleRate*1.1 {
		t.Fatalf("level FIFO lost audio while mohd did not read: %.0f frames/s", rate)
	}
}

func TestMPDNextAndStop(t *testing.T) {
	f := newMPDFixture(t, MPDOptions{}, 3)
	p := &mpdFlowProbe{b: f.m}
	pollUntil(t, 15*time.Second, "audio", func() bool { time.Sleep(100 * time.Millisecond); return p.flowing() })
	f.m.Next()
	pollUntil(t, 5*time.Second, "second track", func() bool { return f.m.Status().Index == 1 })
	f.m.Stop()
	pollUntil(t, 5*time.Second, "stopped", func() bool {
		st := f.m.Status()
		return st.State == StateStopped && st.Fault.IsZero()
	})
	f.m.Play()
	pollUntil(t, 5*time.Second, "playing again", func() bool { time.Sleep(100 * time.Millisecond); return p.flowing() })
}

// An MPD mohd does not own, over TCP: tracks play by their path in the
// shared music folder after a database update; a track outside it is
// skipped and reported; the restart rung needs a restart command. The
// outputs enabled when mohd connects are the ones it keeps enabled; one
// its admin had turned off stays off.
func TestMPDExternalOverTCP(t *testing.T) {
	mpdNeedTools(t)
	dir := t.TempDir()
	music := filepath.Join(dir, "music")
	if err := os.MkdirAll(music, 0o755); err != nil {
		t.Fatal(err)
	}
	var tracks []Track
	for i := range 2 {
		p := filepath.Join(music, "ext"+wdItoa(i)+".mp3")
		mpdTone(t, p, 3, 500+100*i)
		tracks = append(tracks, Track{ID: "e" + wdItoa(i), Path: p, Name: filepath.Base(p)})
	}
	outside := filepath.Join(dir, "outside.mp3")
	mpdTone(t, outside, 1, 800)
	tracks = append(tracks, Track{ID: "out", Path: outside, Name: "outside"})

	port := testkit.MustFreePort(t)
	conf := filepath.Join(dir, "mpd.conf")
	text := "music_directory " + quoteConf(music) + "\ndb_file " + quoteConf(filepath.Join(dir, "db")) +
		"\nbind_to_address \"127.0.0.1\"\nport \"" + wdItoa(port) + "\"\nauto_update \"no\"\nzeroconf_enabled \"no\"\n" +
		"audio_output {\n type \"null\"\n name \"n\"\n mixer_type \"software\"\n}\n" +
		"audio_output {\n type \"null\"\n name \"spare\"\n mixer_type \"software\"\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := startMPDProc("mpd", conf, wdTestLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.kill)
	addr := "127.0.0.1:" + wdItoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := proc.waitReady(ctx, "tcp", addr); err != nil {
		t.Fatal(err)
	}
	mpdSay(t, "tcp", addr, "disableoutput 1") // the admin's choice, before mohd

	m, err := NewMPD(MPDOptions{Logger: wdTestLogger(t), Addr: addr, RenditionDir: music})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPlaylist(tracks)
	m.SetVolume(70)
	m.Play()
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	t.Cleanup(func() { rcancel(); <-done })

	var frames uint64
	pollUntil(t, 15*time.Second, "external mpd playing", func() bool {
		st := m.Status()
		ok := st.State == StatePlaying && st.Frames > frames && frames > 0
		frames = st.Frames
		time.Sleep(100 * time.Millisecond)
		return ok
	})
	st := m.Status()
	if len(st.Skipped) != 1 || st.Skipped[0].TrackID != "out" {
		t.Fatalf("skipped = %+v, want the track outside the music folder", st.Skipped)
	}
	c, err := mpd.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	items, err := c.PlaylistInfo(-1, -1)
	if err != nil || len(items) != 2 || items[0]["file"] != "ext0.mp3" {
		t.Fatalf("queue = %v, %v", items, err)
	}
	rc, rcancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel2()
	if err := m.Recover(rc, RungRestartBackend); !errors.Is(err, ErrRungUnsupported) {
		t.Fatalf("restart without a command: %v, want ErrRungUnsupported", err)
	}
	// A stop by another client is undone by the replay rung.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 5*time.Second, "stop seen", func() bool { return m.Status().Fault.Class == FaultMPDStopped })
	if err := m.Recover(rc, RungReplay); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 5*time.Second, "playing again", func() bool { return m.Status().State == StatePlaying })

	// Output "n" switched off by another client is a fault until mohd
	// turns it back on; "spare" stays as its admin left it. With no
	// output left MPD fails playback ("Failed to open audio output"), so
	// the fault may be MPD's error, naming the cause; the rung is the
	// watchdog's for the class.
	mpdSay(t, "tcp", addr, "disableoutput 0")
	var fault string
	pollUntil(t, 5*time.Second, "output fault", func() bool {
		fault = m.Status().Fault.String()
		return strings.Contains(fault, `mpd-output: another client disabled output "n"`)
	})
	t.Logf("fault: %s", fault)
	rc3, rcancel3 := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel3()
	if err := m.Recover(rc3, m.Status().Fault.Class.FirstRung()); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 5*time.Second, "fault cleared", func() bool { return m.Status().Fault.IsZero() })
	outs, err := c.ListOutputs()
	if err != nil || len(outs) != 2 || outs[0]["outputenabled"] != "1" || outs[1]["outputenabled"] != "0" {
		t.Fatalf("outputs = %v, %v; want n enabled, spare still disabled", outs, err)
	}
}

// gompd panics on a greeting shorter than six bytes and waits forever for
// a greeting that never comes; mohd's connection must do neither.
func TestMPDConnWrongServiceAndSilentServer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		greeting string // "" = accept and say nothing
	}{
		{"short-greeting", "OK\n"},
		{"other-service", "SSH-2.0-OpenSSH_9.2\r\n"},
		{"silent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					if tc.greeting != "" {
						_, _ = c.Write([]byte(tc.greeting))
					}
					defer c.Close()
				}
			}()
			conn := newMPDConn("tcp", l.Addr().String(), 300*time.Millisecond, nil, wdTestLogger(t))
			start := time.Now()
			err = conn.connect()
			if err == nil || conn.connected() {
				t.Fatalf("connected to a server that is not MPD")
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("connect took %v", took)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

func TestLevelMeter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := newLevelMeter(func() time.Time { return now })
	silence := make([]byte, levelBlockBytes/2)
	loud := make([]byte, levelBlockBytes)
	for i := 0; i < len(loud); i += 2 {
		v := int16(8000)
		if i/2%2 == 0 {
			v = -8000
		}
		loud[i], loud[i+1] = byte(v), byte(v>>8)
	}
	m.add(silence[:7]) // chunking need not follow frames
	m.add(silence[7:])
	m.add(silence)
	if f, lvl, last := m.snapshot(); f != SampleRate/10 || lvl != SilenceDBFS || !last.IsZero() {
		t.Fatalf("after 100 ms of silence: frames %d level %v last %v", f, lvl, last)
	}
	now = now.Add(time.Second)
	m.add(loud)
	if f, lvl, last := m.snapshot(); f != SampleRate/5 || lvl < -13 || lvl > -11 || !last.Equal(now) {
		t.Fatalf("after a loud block: frames %d level %.1f last %v", f, lvl, last)
	}
}

// A track MPD refuses to queue is left out and reported; the rest plays
// and the queue is not rebuilt over and over.
func TestMPDRefusedTrackIsSkipped(t *testing.T) {
	f := newMPDFixture(t, MPDOptions{}, 2)
	bogus := Track{ID: "dir", Path: t.TempDir(), Name: "a folder"}
	f.m.SetPlaylist([]Track{f.tracks[0], bogus, f.tracks[1]})
	p := &mpdFlowProbe{b: f.m}
	pollUntil(t, 15*time.Second, "audio", func() bool { time.Sleep(100 * time.Millisecond); return p.flowing() })
	pollUntil(t, 5*time.Second, "skip reported", func() bool {
		for _, s := range f.m.Status().Skipped {
			if s.TrackID == "dir" {
				return true
			}
		}
		return false
	})
	c := f.client(t)
	items, err := c.PlaylistInfo(-1, -1)
	if err != nil || len(items) != 2 {
		t.Fatalf("queue = %v, %v; want the two real tracks", items, err)
	}
	st1, _ := c.Status()
	time.Sleep(1500 * time.Millisecond)
	st2, _ := c.Status()
	if st1["playlist"] != st2["playlist"] {
		t.Fatalf("queue keeps being rebuilt: version %s → %s", st1["playlist"], st2["playlist"])
	}
	// Setting the same playlist again does not interrupt the song on air.
	before := f.m.Status()
	f.m.SetPlaylist([]Track{f.tracks[0], bogus, f.tracks[1]})
	time.Sleep(700 * time.Millisecond)
	after := f.m.Status()
	if after.Track == nil || before.Track == nil || after.Track.ID != before.Track.ID && after.Position > time.Second {
		t.Fatalf("song on air interrupted: %v at %v → %v at %v", before.Track, before.Position, after.Track, after.Position)
	}
	if st3, _ := c.Status(); st3["playlist"] != st2["playlist"] {
		t.Fatalf("same playlist rebuilt the queue: version %s → %s", st2["playlist"], st3["playlist"])
	}
}

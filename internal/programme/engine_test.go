package programme

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// The tones of the end-to-end tracks: whole periods of 44.1 kHz, so
// every track ends at the phase the next one starts at and a seam is
// continuous unless a sample is lost or repeated.
var tonePeriods = map[string]int{"a": 150, "b": 100, "msg": 50, "c": 70, "d": 60} // 294, 441, 882, 630, 735 Hz

// houseTrack encodes seconds of a sine (left) and cosine (right) with
// lame: the house format, with the LAME tag that makes it gapless.
func houseTrack(t *testing.T, dir, id string, secs int) player.Track {
	t.Helper()
	period := tonePeriods[id]
	frames := secs * player.SampleRate
	pcm := make([]byte, frames*player.BytesPerFrame)
	for i := range frames {
		ph := 2 * math.Pi * float64(i%period) / float64(period)
		binary.LittleEndian.PutUint16(pcm[i*4:], uint16(int16(math.Round(9000*math.Sin(ph)))))
		binary.LittleEndian.PutUint16(pcm[i*4+2:], uint16(int16(math.Round(9000*math.Cos(ph)))))
	}
	raw := filepath.Join(dir, id+".raw")
	if err := os.WriteFile(raw, pcm, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, id+".mp3")
	if b, err := exec.Command("lame", "--quiet", "-r", "-s", "44.1", "--bitwidth", "16", "--signed", "--little-endian", "-b", "192", raw, out).CombinedOutput(); err != nil {
		t.Fatalf("lame (Debian package lame): %v %s", err, b)
	}
	return player.Track{ID: id, Name: id, Path: out}
}

// segment is a run of output in one tone.
type segment struct {
	id     string
	frames int
}

// toneSegments names the tone of every 10 ms of the output and merges
// equal neighbours. Left is a sine and right its cosine, so the phase
// of every sample is atan2(left, right) and its mean advance per sample
// is the tone's frequency, exactly, in any window.
// readSegments reads the PCM the player wrote to out and splits it into
// its tones, logged as "id:seconds" (got) for a failure to show.
func readSegments(t *testing.T, out string) ([]byte, []segment, []string) {
	t.Helper()
	pcm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	segs := toneSegments(pcm)
	var got []string
	for _, s := range segs {
		got = append(got, fmt.Sprintf("%s:%.2f", s.id, float64(s.frames)/player.SampleRate))
	}
	t.Logf("output: %s", strings.Join(got, " "))
	return pcm, segs, got
}

func toneSegments(pcm []byte) []segment {
	const win = 441
	phase := func(i int) float64 {
		l := float64(int16(binary.LittleEndian.Uint16(pcm[i*4:])))
		r := float64(int16(binary.LittleEndian.Uint16(pcm[i*4+2:])))
		return math.Atan2(l, r)
	}
	var segs []segment
	for start := 1; start+win <= len(pcm)/4; start += win {
		sum := 0.0
		for i := start; i < start+win; i++ {
			d := phase(i) - phase(i-1)
			for d <= -math.Pi {
				d += 2 * math.Pi
			}
			for d > math.Pi {
				d -= 2 * math.Pi
			}
			sum += d
		}
		freq := sum / win * player.SampleRate / (2 * math.Pi)
		best, bestD := "?", math.Inf(1)
		for id, p := range tonePeriods {
			if d := math.Abs(freq - float64(player.SampleRate)/float64(p)); d < bestD {
				best, bestD = id, d
			}
		}
		if bestD > 10 {
			best = "?" // a window across a joint
		}
		if n := len(segs); n > 0 && segs[n-1].id == best {
			segs[n-1].frames += win
		} else {
			segs = append(segs, segment{best, win})
		}
	}
	// A window across a joint belongs to neither tone: give it to the
	// one before, so lengths stay whole tracks.
	var out []segment
	for _, s := range segs {
		if n := len(out); n > 0 && (s.id == "?" || out[n-1].id == s.id) {
			out[n-1].frames += s.frames
			continue
		}
		out = append(out, s)
	}
	return out
}

// maxStep is the largest sample-to-sample step a tone here makes (the
// 882 Hz one steps at most ~1130); anything larger is a click.
const maxStep = 2000

// firstClick is the frame of the first step larger than any tone makes,
// or -1.
func firstClick(pcm []byte) int {
	for i := 1; i < len(pcm)/4; i++ {
		for ch := range 2 {
			a := float64(int16(binary.LittleEndian.Uint16(pcm[(i-1)*4+ch*2:])))
			b := float64(int16(binary.LittleEndian.Uint16(pcm[i*4+ch*2:])))
			if math.Abs(b-a) > maxStep {
				return i
			}
		}
	}
	return -1
}

// amplitude is the envelope at frame i: a sine/cosine pair has a constant
// sqrt(l²+r²), so it reads the fade directly.
func amplitude(pcm []byte, i int) float64 {
	l := float64(int16(binary.LittleEndian.Uint16(pcm[i*4:])))
	r := float64(int16(binary.LittleEndian.Uint16(pcm[i*4+2:])))
	return math.Hypot(l, r)
}

// joints checks the whole output for a click and for a hole (the
// envelope near zero, which a sine/cosine pair never is).
func joints(t *testing.T, pcm []byte) {
	t.Helper()
	if i := firstClick(pcm); i >= 0 {
		t.Fatalf("click at %.3f s", float64(i)/player.SampleRate)
	}
	hole := 0
	for i := range len(pcm) / 4 {
		if amplitude(pcm, i) < 2000 {
			hole++
			if hole > 4 {
				t.Fatalf("hole at %.3f s", float64(i)/player.SampleRate)
			}
		} else {
			hole = 0
		}
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestEngineEndToEnd plays a programme through the direct backend into
// the paced file output and reads the decoded PCM: a message after 3
// "minutes" (of one second each) of music at the next track boundary,
// the music resuming with the track after the one it followed, a
// schedule switch at a set instant taking effect at the next track
// boundary, and no click or hole at any joint.
func TestEngineEndToEnd(t *testing.T) {
	dir := t.TempDir()
	tracks := map[string]player.Track{}
	for _, id := range []string{"a", "b", "c", "d"} {
		tracks[id] = houseTrack(t, dir, id, 2)
	}
	tracks["msg"] = houseTrack(t, dir, "msg", 1)
	var lib []player.Track
	for _, id := range []string{"a", "b", "c", "d", "msg"} {
		lib = append(lib, tracks[id])
	}
	st, err := Open(dir, []string{"a", "b"}, func(id string) bool { _, ok := tracks[id]; return ok })
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlaylist(Playlist{Name: "day", Tracks: []string{"a", "b"}, Message: &Message{Track: "msg", EveryMinutes: 3}}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlaylist(Playlist{Name: "night", Tracks: []string{"c", "d"}}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSchedule(Schedule{Timezone: "Europe/Paris", Default: "night",
		Rules: []Rule{{Name: "day", Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, From: "00:00", To: "10:00", Playlist: "day"}}}); err != nil {
		t.Fatal(err)
	}
	// The fake clock reaches 10:00 Paris 5.5 s after the start, in the
	// middle of the track after the message.
	paris, _ := time.LoadLocation("Europe/Paris")
	start := time.Now()
	shift := time.Date(2026, 6, 1, 10, 0, 0, 0, paris).Add(-5500 * time.Millisecond).Sub(start)
	now := func() time.Time { return time.Now().Add(shift) }

	out := filepath.Join(dir, "out.raw")
	eng, run := playOnFile(t, st, lib, now, out, true)
	eng.Apply()
	if pr := eng.Programme(); pr.Playlist != "day" || pr.Reason != ReasonRule || pr.NextPlaylist != "night" {
		t.Fatalf("first programme: %+v", pr)
	}
	pl0, sc0 := fileMod(t, filepath.Join(dir, PlaylistsFile)), fileMod(t, filepath.Join(dir, ScheduleFile))
	run(11500 * time.Millisecond)
	// A switch and a message are playback, not changes: nothing written.
	if !fileMod(t, filepath.Join(dir, PlaylistsFile)).Equal(pl0) || !fileMod(t, filepath.Join(dir, ScheduleFile)).Equal(sc0) {
		t.Fatal("playback rewrote the programme state")
	}
	if pr := eng.Programme(); pr.Playlist != "night" {
		t.Fatalf("after 10:00: %+v", pr)
	}

	pcm, segs, got := readSegments(t, out)
	// a b (3 s of music: the message is due during b) msg a (10:00
	// falls in a: night starts after it) c d ...
	want := []struct {
		id   string
		secs float64
	}{{"a", 2}, {"b", 2}, {"msg", 1}, {"a", 2}, {"c", 2}}
	if len(segs) < len(want)+1 {
		t.Fatalf("output %v, want at least %v then more", got, want)
	}
	for i, w := range want {
		s := segs[i]
		if s.id != w.id || math.Abs(float64(s.frames)/player.SampleRate-w.secs) > 0.021 {
			t.Fatalf("segment %d is %s:%.2f, want %s:%.0f (output %v)", i, s.id, float64(s.frames)/player.SampleRate, w.id, w.secs, got)
		}
	}
	if segs[len(want)].id != "d" {
		t.Fatalf("after c comes %s, want d (output %v)", segs[len(want)].id, got)
	}
	joints(t, pcm)
}

// playOnFile builds the direct backend on the paced file output, its
// player and an engine over st; run plays for d and stops.
func playOnFile(t *testing.T, st *Store, lib []player.Track, now func() time.Time, out string, fade bool) (*Engine, func(time.Duration)) {
	t.Helper()
	spec, err := player.ParseOutput("file:" + out)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testLog{t}, nil))
	backend := player.NewDirect(player.DirectOptions{Logger: log,
		OpenSink: func(ctx context.Context) (player.Sink, error) { return player.OpenSink(ctx, spec, log) }})
	p := player.New(player.Options{Backend: backend, Logger: log, Settings: player.DefaultSettings})
	o := EngineOptions{
		Store: st, Tracks: func() []player.Track { return lib }, SetPlaylist: p.SetPlaylist,
		OnAir: func() string {
			if tr := backend.Status().Track; tr != nil {
				return tr.ID
			}
			return ""
		},
		Now: now, Logger: log, MessageUnit: time.Second,
	}
	if fade {
		o.SwitchNow = p.SwitchNow
	}
	eng := NewEngine(o)
	return eng, func(d time.Duration) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); p.Run(ctx) }()
		go func() { defer wg.Done(); eng.Run(ctx) }()
		time.Sleep(d)
		cancel()
		wg.Wait()
	}
}

// TestOverrideFades puts an override on and clears it while music plays,
// on the direct backend into the file output: each switch happens at
// once, the track on air fading out linearly over 300 ms to exact
// silence before the cut, the next one ramping up, with no click. The
// same switch without the fade is a click the test sees.
func TestOverrideFades(t *testing.T) {
	dir := t.TempDir()
	tracks := map[string]player.Track{}
	// a is long, so a switch at once is told from one at its end even
	// when a loaded machine delays the override's fsync by seconds.
	tracks["a"] = houseTrack(t, dir, "a", 6)
	tracks["b"] = houseTrack(t, dir, "b", 3)
	tracks["msg"] = houseTrack(t, dir, "msg", 1)
	lib := []player.Track{tracks["a"], tracks["b"], tracks["msg"]}
	for _, fade := range []bool{true, false} {
		t.Run(fmt.Sprintf("fade=%v", fade), func(t *testing.T) {
			sd := t.TempDir()
			st, err := Open(sd, []string{"a", "b"}, func(id string) bool { _, ok := tracks[id]; return ok })
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(sd, "out.raw")
			eng, run := playOnFile(t, st, lib, time.Now, out, fade)
			eng.Apply()
			go func() {
				time.Sleep(1200 * time.Millisecond)
				if err := st.PutOverride(Override{Track: "msg"}, time.Now()); err != nil {
					t.Error(err)
				}
				time.Sleep(1500 * time.Millisecond)
				if _, err := st.ClearOverride(time.Now()); err != nil {
					t.Error(err)
				}
			}()
			run(4500 * time.Millisecond)
			pcm, segs, got := readSegments(t, out)
			if len(segs) < 3 || segs[0].id != "a" || segs[1].id != "msg" || segs[2].id != "a" {
				t.Fatalf("output %v, want a, then the override's msg at once, then a again", got)
			}
			// The switch came at once: a did not play to its end.
			if secs := float64(segs[0].frames) / player.SampleRate; secs > 5.9 {
				t.Fatalf("a played %.2f s before the override: not at once", secs)
			}
			if fade {
				if i := firstClick(pcm); i >= 0 {
					t.Fatalf("click at %.3f s", float64(i)/player.SampleRate)
				}
			}
			// At each cut the envelope reaches exact silence, after a
			// linear 300 ms fade.
			cuts := 0
			for i := int(0.4 * player.SampleRate); i < len(pcm)/4; i++ {
				if amplitude(pcm, i) != 0 || amplitude(pcm, i-1) == 0 {
					continue
				}
				ref := amplitude(pcm, i-int(0.4*player.SampleRate)) // the tone at the player's volume
				faded := true
				for _, c := range []struct{ before, want float64 }{{0.075, 0.25}, {0.150, 0.5}, {0.225, 0.75}, {0.320, 1}} {
					j := i - int(c.before*player.SampleRate)
					if a := amplitude(pcm, j) / ref; math.Abs(a-c.want) > 0.06 {
						t.Logf("silence at %.3f s: the envelope %.0f ms before is %.2f, not %.2f", float64(i)/player.SampleRate, c.before*1000, a, c.want)
						faded = false
					}
				}
				if faded {
					cuts++
				}
			}
			if !fade {
				// The same switch without the fade: the check sees no
				// faded cut (a cut at a random phase is a click).
				if cuts != 0 {
					t.Fatalf("%d faded cuts without a fade: the check is blind", cuts)
				}
				return
			}
			if cuts != 2 {
				t.Fatalf("%d cuts to silence, want 2 (override on, override off)", cuts)
			}
		})
	}
}

// A wall clock stepped forward (NTP after a boot without a battery-backed
// clock) is noticed within MaxWake, without any change to kick the engine.
func TestEngineFollowsAClockStep(t *testing.T) {
	dir := t.TempDir()
	tracks := map[string]player.Track{"a": {ID: "a", Path: "/a.mp3"}, "b": {ID: "b", Path: "/b.mp3"}}
	st, err := Open(dir, []string{"a"}, func(id string) bool { _, ok := tracks[id]; return ok })
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlaylist(Playlist{Name: "day", Tracks: []string{"b"}}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSchedule(Schedule{Timezone: "UTC", Default: "default", Rules: []Rule{{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, From: "08:00", To: "18:00", Playlist: "day"}}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	var played [][]player.Track
	eng := NewEngine(EngineOptions{Store: st,
		Tracks:      func() []player.Track { return []player.Track{tracks["a"], tracks["b"]} },
		SetPlaylist: func(ts []player.Track) { mu.Lock(); played = append(played, ts); mu.Unlock() },
		OnAir:       func() string { return "" },
		Now:         func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
		MaxWake:     50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for eng.Programme().Playlist != "default" {
		if time.Now().After(deadline) {
			t.Fatalf("first programme: %+v", eng.Programme())
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	clock = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC) // NTP steps the clock
	mu.Unlock()
	for eng.Programme().Playlist != "day" {
		if time.Now().After(deadline) {
			t.Fatalf("after the clock step: %+v", eng.Programme())
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := played[len(played)-1]; len(last) != 1 || last[0].ID != "b" {
		t.Fatalf("the player was handed %v, want [b]", last)
	}
}

// fadedCuts counts the joints where the envelope reaches exact silence
// after a linear 300 ms fade.
func fadedCuts(t *testing.T, pcm []byte) int {
	cuts := 0
	for i := int(0.4 * player.SampleRate); i < len(pcm)/4; i++ {
		if amplitude(pcm, i) != 0 || amplitude(pcm, i-1) == 0 {
			continue
		}
		ref := amplitude(pcm, i-int(0.4*player.SampleRate))
		faded := true
		for _, c := range []struct{ before, want float64 }{{0.075, 0.25}, {0.150, 0.5}, {0.225, 0.75}, {0.320, 1}} {
			if a := amplitude(pcm, i-int(c.before*player.SampleRate)) / ref; math.Abs(a-c.want) > 0.06 {
				faded = false
			}
		}
		if faded {
			cuts++
		}
	}
	return cuts
}

// TestInterruptingMessage: a message with interrupt plays at once when
// due, after the 300 ms fade, and the interrupted track then starts
// again from its beginning; no click anywhere.
func TestInterruptingMessage(t *testing.T) {
	dir := t.TempDir()
	tracks := map[string]player.Track{"a": houseTrack(t, dir, "a", 2), "b": houseTrack(t, dir, "b", 2), "msg": houseTrack(t, dir, "msg", 1)}
	lib := []player.Track{tracks["a"], tracks["b"], tracks["msg"]}
	st, err := Open(dir, []string{"a", "b"}, func(id string) bool { _, ok := tracks[id]; return ok })
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutPlaylist(Playlist{Name: DefaultPlaylist, Tracks: []string{"a", "b"}, Message: &Message{Track: "msg", EveryMinutes: 3, Interrupt: true}}, false); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.raw")
	eng, run := playOnFile(t, st, lib, time.Now, out, true)
	eng.Apply()
	run(7 * time.Second)
	pcm, segs, got := readSegments(t, out)
	if len(segs) < 4 || segs[0].id != "a" || segs[1].id != "b" || segs[2].id != "msg" || segs[3].id != "b" {
		t.Fatalf("output %v, want a, b interrupted, msg, b again", got)
	}
	if secs := float64(segs[1].frames) / player.SampleRate; secs > 1.8 {
		t.Fatalf("b played %.2f s before the message: it did not interrupt", secs)
	}
	if secs := float64(segs[2].frames) / player.SampleRate; math.Abs(secs-1) > 0.021 {
		t.Fatalf("the message played %.2f s, want all of its 1 s", secs)
	}
	if len(segs) > 4 {
		if secs := float64(segs[3].frames) / player.SampleRate; math.Abs(secs-2) > 0.021 {
			t.Fatalf("b after the message played %.2f s, want 2 (from its start)", secs)
		}
	}
	if i := firstClick(pcm); i >= 0 {
		t.Fatalf("click at %.3f s", float64(i)/player.SampleRate)
	}
	if n := fadedCuts(t, pcm); n != 1 {
		t.Fatalf("%d faded cuts, want 1 (into the message)", n)
	}
}

package webui

import (
	"context"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mohproject/moh/internal/phone"
	"github.com/mohproject/moh/player"
)

// phoneBox is a box as mohd wires one with network outputs: the direct
// backend plays to a paced clock whose every byte is teed into the
// telephone signal's converter, which publishes on the hub the streams
// read; test tones go to both (cmd/mohd/outputs.go). Its library holds
// one track, a sine at hz.
type phoneBoxT struct {
	s     *Server
	p     *player.Player
	conv  *phone.Converter
	base  string
	token string // read scope
	// lineBytes counts the PCM the line-out played (the tee sees every
	// byte the paced output plays).
	lineBytes *atomic.Int64
}

func phoneBox(t *testing.T, hz int) *phoneBoxT {
	t.Helper()
	lib := openLibrary(t, nil)
	f, err := os.Open(makeMP3(t, t.TempDir(), "Sine.mp3", 20, hz))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := lib.Ingest(context.Background(), "Sine.mp3", f, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hub := phone.NewHub()
	conv := phone.NewConverter(hub, phone.ConverterOptions{Logger: testLogger(t)})
	lineBytes := new(atomic.Int64)
	tee := func(b []byte) { lineBytes.Add(int64(len(b))); conv.Write(b) }
	lines := player.NewLineOutputs(player.LineOutputsOptions{Clock: true, Network: true, Tee: tee, Logger: testLogger(t)})
	p, _ := directPlayer(t, player.DirectOptions{
		OpenSink: lines.OpenSink,
		Outputs:  lines.Statuses,
		OnTone:   func(tr player.ToneRequest) { conv.Tone(tr.Hz, tr.DBm0(), tr.Duration) },
	})
	p.SetPlaylist(libraryTracks(lib))
	ctx, cancel := context.WithCancel(context.Background())
	convDone := make(chan struct{})
	go func() { conv.Run(ctx); close(convDone) }()
	t.Cleanup(func() { cancel(); <-convDone })
	runPlayer(t, p)

	dir := t.TempDir()
	if err := SetPassword(dir, testPW); err != nil {
		t.Fatal(err)
	}
	tok, _, err := CreateToken(dir, "read", "pbx")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Player: p, Library: lib, DataDir: dir, Logger: testLogger(t), Version: "browser-test", Streams: hub})
	if err != nil {
		t.Fatal(err)
	}
	ln := listenLoopback(t)
	srvCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(srvCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return &phoneBoxT{s: s, p: p, conv: conv, base: "http://" + ln.Addr().String(), token: tok, lineBytes: lineBytes}
}

// liveReading is what the page's telephone card says it hears: the level
// it measured on the samples of /api/v1/stream/slin and the strongest
// frequency its Web Audio analyser found in what it plays.
const liveReading = `(() => { const e = document.getElementById('live-state');
	return {Text: e.textContent, DBm0: parseFloat(e.dataset.dbm0 || 'NaN'), Hz: parseFloat(e.dataset.hz || 'NaN')}; })()`

type liveRead struct {
	Text string
	DBm0 float64
	Hz   float64
}

// TestBrowserPhoneLine drives the page's telephone card in Chromium
// against a real player and telephone signal playing a 441 Hz track:
// "Hear as callers will" plays the live stream (the page measures
// 441 Hz at the converter's -19 dBm0), the test tone button puts 1 kHz at
// the level asked on the line (heard by the page's player, read on the
// line-out's meter) with a countdown, and Stop brings the music back.
func TestBrowserPhoneLine(t *testing.T) {
	box := phoneBox(t, 441)
	s, p, base := box.s, box.p, box.base
	bp := newBrowserPage(t, "phone")
	run, shot := bp.run, bp.shot

	run("login",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#login-button", chromedp.ByID),
		chromedp.SendKeys("#password", testPW, chromedp.ByID),
		chromedp.Click("#login-button", chromedp.ByID),
		chromedp.WaitVisible("#phone-line", chromedp.ByID),
		waitJS(`document.getElementById('state').textContent.startsWith('playing') && document.getElementById('track-name').textContent === 'Sine.mp3'`),
	)

	// waitLive waits until the page hears hz (±3) at dbm0 (±tol) and
	// returns what it said.
	waitLive := func(step string, hz, dbm0, tol float64) liveRead {
		t.Helper()
		var r liveRead
		run(step, waitJS(`(() => { const r = `+liveReading+`;
			return Math.abs(r.Hz - `+ftoa(hz)+`) <= 3 && Math.abs(r.DBm0 - (`+ftoa(dbm0)+`)) <= `+ftoa(tol)+`; })()`),
			chromedp.Evaluate(liveReading, &r))
		return r
	}

	start := time.Now()
	run("listen", chromedp.Click("#live-btn", chromedp.ByID),
		waitJS(`document.getElementById('live-btn').textContent === 'Stop listening'`))
	music := waitLive("hear the music as callers do", 441, -19, 1)
	run("listen shot", shot("01-listening"))
	t.Logf("live after %v: %q", time.Since(start).Round(10*time.Millisecond), music.Text)
	if st, _ := s.StreamStats(); st.Listeners["slin"] != 1 {
		t.Errorf("page listening, but the box counts %v stream listeners", st.Listeners)
	}

	// The test tone, at a level that is not the music's, for 20 s.
	run("tone",
		chromedp.SetValue("#tone-dbm0", "-25", chromedp.ByID),
		chromedp.SetValue("#tone-seconds", "20", chromedp.ByID),
		chromedp.Click("#tone-btn", chromedp.ByID),
		waitJS(`document.getElementById('tone-state').textContent.includes('music resumes in')`),
		chromedp.WaitVisible("#tone-stop", chromedp.ByID),
	)
	var toneText string
	run("read tone state", chromedp.Text("#tone-state", &toneText, chromedp.ByID))
	if !strings.Contains(toneText, "1000 Hz at -25.0 dBm0, -28.2 dBFS") {
		t.Errorf("tone state %q", toneText)
	}
	secs := countdown(t, toneText)
	if secs < 15 || secs > 20 {
		t.Errorf("tone state %q: want 15..20 s to go", toneText)
	}
	// The line-out's meter reads the tone (-28.17 dBFS sine-referenced
	// is -31.18 on the RMS meter), and the phone line carries it at the
	// level asked: the page hears it.
	waitFor(t, "line-out at the tone's level", func() bool {
		l := p.Status().LevelDBFS
		return l > -31.4 && l < -30.9
	})
	tone := waitLive("hear the tone", 1000, -25, 0.3)
	run("tone shot", shot("02-tone"))
	t.Logf("tone: %q / %q", toneText, tone.Text)
	// The countdown counts.
	run("countdown", waitJS(`(() => { const m = document.getElementById('tone-state').textContent.match(/resumes in (\d+) s/);
		return m && parseInt(m[1], 10) <= `+strconv.Itoa(secs-2)+`; })()`))

	// Another page (here: this one, reloaded) shows the tone that plays.
	run("reload during the tone",
		chromedp.Reload(),
		chromedp.WaitVisible("#phone-line", chromedp.ByID),
		waitJS(`document.getElementById('tone-state').textContent.includes('1000 Hz at -25.0 dBm0') &&
			document.getElementById('tone-state').textContent.includes('music resumes in')`),
		chromedp.WaitVisible("#tone-stop", chromedp.ByID),
		chromedp.Click("#live-btn", chromedp.ByID),
	)
	waitLive("hear the tone after the reload", 1000, -25, 0.3)
	run("stop tone",
		chromedp.Click("#tone-stop", chromedp.ByID),
		waitJS(`document.getElementById('tone-state').textContent.includes('ended')`),
		waitJS(`document.getElementById('tone-stop').offsetParent === null`),
	)
	back := waitLive("hear the music again", 441, -19, 1.5)
	t.Logf("after the tone: %q", back.Text)

	run("stop listening",
		chromedp.Click("#live-btn", chromedp.ByID),
		waitJS(`document.getElementById('live-btn').textContent === 'Hear as callers will'`),
		shot("03-stopped"),
	)
	waitStreams(t, s, func(l map[string]int, _ map[string]uint64) bool { return l["slin"] == 0 })
}

// countdown reads N from "music resumes in N s".
func countdown(t *testing.T, text string) int {
	t.Helper()
	_, after, ok := strings.Cut(text, "resumes in ")
	n, err := strconv.Atoi(strings.TrimSuffix(strings.Fields(after + " ")[0], " "))
	if !ok || err != nil {
		t.Fatalf("no countdown in %q", text)
	}
	return n
}

func ftoa(x float64) string {
	if math.IsNaN(x) {
		return "NaN"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

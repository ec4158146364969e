package webui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mohproject/moh/player"
)

const chromiumPath = "/usr/bin/chromium"

// artifactsDir is where screenshots go: $MOH_ARTIFACTS (make test sets it
// to the repo's artifacts/), else a temp dir of the test.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("MOH_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "webui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("no Chromium at %s (Debian package chromium; make test installs it): %v", chromiumPath, err)
	}
	// Not t.TempDir: Chromium's helper processes may still write to their
	// profile for a moment after the browser exits, and t.TempDir's
	// cleanup fails the test on "directory not empty". Removed after the
	// browser is stopped (cleanups run last-registered first), with
	// retries.
	profile, err := os.MkdirTemp("", "moh-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("chromium profile %s left behind", profile)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelC := context.WithTimeout(ctx, 150*time.Second)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	// Start the browser now so a broken Chromium fails here, clearly.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestBrowserAdminFlow drives the real page in Debian's Chromium against a
// real player (direct backend, paced null sink) and the real library:
// first-run setup, log out and in, upload a valid and an invalid file and
// see progress and the refusal, reorder, delete, volume, log out.
func TestBrowserAdminFlow(t *testing.T) {
	lib := openLibrary(t, nil)
	seedDir := t.TempDir()
	seed, err := os.Open(makeMP3(t, seedDir, "Welcome.mp3", 3, 330))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := lib.Ingest(context.Background(), "Welcome.mp3", seed, nil); err != nil {
		t.Fatal(err)
	}
	seed.Close()
	p, _ := realPlayer(t, lib)
	dir := t.TempDir()
	s, err := New(Options{Player: p, Library: lib, DataDir: dir, Logger: testLogger(t), Version: "browser-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx0, stop := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	ln := listenLoopback(t)
	go func() { srvDone <- s.Serve(ctx0, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-srvDone; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	// The files the admin drops: a 20 s MP3 (long enough that the page shows
	// the ingest stages) and a text file named like an MP3.
	files := t.TempDir()
	good := makeMP3(t, files, "Spring hold music.mp3", 20, 440)
	bad := filepath.Join(files, "minutes of the meeting.mp3")
	if err := os.WriteFile(bad, []byte(strings.Repeat("Minutes of the meeting. Nothing was decided.\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}

	bp := newBrowserPage(t, "")
	art, shot, run := bp.art, bp.shot, bp.run

	// First run: the page sends the admin to /setup, which wants the code
	// from the log.
	code := s.SetupCode()
	var loc string
	run("setup",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#setup-button", chromedp.ByID),
		chromedp.Location(&loc),
		shot("01-setup"),
		chromedp.SendKeys("#code", code, chromedp.ByID),
		chromedp.SendKeys("#password", testPW, chromedp.ByID),
		chromedp.SendKeys("#confirm", testPW, chromedp.ByID),
		chromedp.Click("#setup-button", chromedp.ByID),
		chromedp.WaitVisible("#now", chromedp.ByID),
	)
	if !strings.HasSuffix(loc, "/setup") {
		t.Fatalf("fresh box did not go to setup: %s", loc)
	}
	run("logout after setup",
		chromedp.Click("#logout", chromedp.ByID),
		chromedp.WaitVisible("#login-button", chromedp.ByID),
	)
	var errText string
	run("wrong password",
		chromedp.SendKeys("#password", "not the password", chromedp.ByID),
		chromedp.Click("#login-button", chromedp.ByID),
		visibleText("#form-error", &errText),
	)
	if !strings.Contains(errText, "Wrong password") {
		t.Fatalf("login error text %q", errText)
	}
	run("login",
		chromedp.SendKeys("#password", testPW, chromedp.ByID),
		chromedp.Click("#login-button", chromedp.ByID),
		chromedp.WaitVisible("#now", chromedp.ByID),
		// The status poll fills in the real player's state and track.
		waitJS(`document.getElementById('state').textContent.startsWith('playing') && document.getElementById('track-name').textContent.length > 0`),
		waitJS(`document.querySelectorAll('#tracks li').length === 1`),
		shot("02-logged-in"),
	)

	// Record every status line the upload list shows, to prove the page
	// showed progress and not just the outcome.
	run("upload",
		chromedp.Evaluate(`window.seen = [];
			new MutationObserver(() => document.querySelectorAll('#upload-list .upload-status').forEach(
				(e) => { if (window.seen[window.seen.length-1] !== e.textContent) window.seen.push(e.textContent); }))
			.observe(document.getElementById('upload-list'), {subtree: true, childList: true, characterData: true});`, nil),
		chromedp.SetUploadFiles("#file-input", []string{good, bad}, chromedp.ByID),
		chromedp.WaitVisible("#upload-list li.ingesting", chromedp.ByQuery),
		shot("03-uploading"),
		chromedp.WaitVisible("#upload-list li.done", chromedp.ByQuery),
		chromedp.WaitVisible("#upload-list li.refused", chromedp.ByQuery),
		waitJS(`document.querySelectorAll('#tracks li').length === 2`),
		shot("04-uploaded"),
	)
	var refusal, doneText string
	var seen []string
	run("read upload results",
		chromedp.Text("#upload-list li.refused .upload-status", &refusal, chromedp.ByQuery),
		chromedp.Text("#upload-list li.done .upload-status", &doneText, chromedp.ByQuery),
		chromedp.Evaluate(`window.seen`, &seen),
	)
	t.Logf("upload statuses seen: %q", seen)
	if !strings.Contains(refusal, "not an audio file") {
		t.Fatalf("refusal text %q", refusal)
	}
	if !strings.Contains(doneText, "LUFS") {
		t.Fatalf("done text %q", doneText)
	}
	joined := strings.Join(seen, "|")
	if !strings.Contains(joined, "Uploading") || !strings.Contains(joined, "Processing") {
		t.Fatalf("no transfer progress shown: %q", seen)
	}
	if !strings.Contains(joined, "Decoding") && !strings.Contains(joined, "Normalising") &&
		!strings.Contains(joined, "Measuring") && !strings.Contains(joined, "Encoding") && !strings.Contains(joined, "Receiving") {
		t.Fatalf("no ingest progress shown: %q", seen)
	}
	tracks := lib.Tracks()
	if len(tracks) != 2 || tracks[0].Name != "Welcome.mp3" || tracks[1].Name != "Spring hold music.mp3" {
		t.Fatalf("library after upload: %+v", tracks)
	}

	// Listening in the browser: the rendition and the phone-band preview
	// load into the page's player (same-origin media under the CSP, with
	// the session cookie).
	run("listen",
		chromedp.Click(`#tracks li:nth-child(2) .listen`, chromedp.ByQuery),
		waitJS(`(() => { const a = document.getElementById('preview-audio'); return a.src.endsWith('/audio') && a.readyState >= 1 && a.duration > 19; })()`),
		chromedp.Click(`#tracks li:nth-child(2) .phone`, chromedp.ByQuery),
		waitJS(`(() => { const a = document.getElementById('preview-audio'); return a.src.endsWith('/preview') && a.readyState >= 1 && a.duration > 19; })()`),
	)

	// Reorder: move the new track up.
	run("reorder",
		chromedp.Click(`#tracks li:nth-child(2) .move-up`, chromedp.ByQuery),
		waitJS(`document.querySelector('#tracks li:first-child .track-name').textContent === 'Spring hold music.mp3'`),
		shot("05-reordered"),
	)
	if tr := lib.Tracks(); tr[0].Name != "Spring hold music.mp3" {
		t.Fatalf("library order after reorder: %s, %s", tr[0].Name, tr[1].Name)
	}
	waitFor(t, "player playlist follows the reorder", func() bool {
		pl := p.Playlist()
		return len(pl) == 2 && pl[0].Name == "Spring hold music.mp3"
	})

	// Delete with confirmation: the first click only asks.
	run("delete ask",
		chromedp.Click(`#tracks li[data-id="`+tracks[0].ID+`"] .delete`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tracks li[data-id="`+tracks[0].ID+`"] .confirm-delete`, chromedp.ByQuery),
		shot("06-delete-confirm"),
	)
	if n := len(lib.Tracks()); n != 2 {
		t.Fatalf("deleted before confirmation: %d tracks", n)
	}
	run("delete confirm",
		chromedp.Click(`#tracks li[data-id="`+tracks[0].ID+`"] .confirm-delete`, chromedp.ByQuery),
		waitJS(`document.querySelectorAll('#tracks li').length === 1`),
	)
	if tr := lib.Tracks(); len(tr) != 1 || tr[0].Name != "Spring hold music.mp3" {
		t.Fatalf("library after delete: %+v", tr)
	}

	// Volume: move the slider as a user would (input, then change).
	run("volume",
		chromedp.SetValue("#volume", "35", chromedp.ByID),
		chromedp.Evaluate(`document.getElementById('volume').dispatchEvent(new Event('input'));
			document.getElementById('volume').dispatchEvent(new Event('change'));`, nil),
		waitJS(`document.getElementById('volume-value').textContent === '35'`),
	)
	waitFor(t, "player volume 35", func() bool { return p.Settings().Volume == 35 })

	// Stop (it asks first) and play from the buttons; the real backend
	// follows.
	run("stop",
		chromedp.Click("#btn-stop", chromedp.ByID),
		chromedp.WaitVisible("#btn-stop-yes", chromedp.ByID),
		chromedp.Click("#btn-stop-yes", chromedp.ByID),
		waitJS(`document.getElementById('state').textContent.startsWith('stopped')`))
	if p.Settings().Playing {
		t.Fatal("stop button did not stop")
	}
	run("play", chromedp.Click("#btn-play", chromedp.ByID), waitJS(`document.getElementById('state').textContent.startsWith('playing')`))
	waitFor(t, "audio flowing again", func() bool { return p.Status().State == player.StatePlaying })

	// Tokens from the page.
	var tokText string
	run("token",
		chromedp.SendKeys("#token-name", "fleet", chromedp.ByID),
		chromedp.SetValue("#token-scope", "operate", chromedp.ByID),
		chromedp.Click("#token-create", chromedp.ByID),
		visibleText("#new-token", &tokText),
		waitJS(`document.querySelectorAll('#tokens tr').length === 1`),
		waitJS(`document.querySelector('#events li') !== null`),
		shot("07-settings-and-token"),
	)
	if !strings.Contains(tokText, "moh_") {
		t.Fatalf("new token text %q", tokText)
	}
	if ts, _ := ListTokens(dir); len(ts) != 1 || ts[0].Scope != ScopeOperate || ts[0].Name != "fleet" {
		t.Fatalf("tokens after create: %+v", ts)
	}

	// The same page on a phone-sized screen.
	run("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)),
		chromedp.Reload(),
		chromedp.WaitVisible("#now", chromedp.ByID),
		waitJS(`document.querySelectorAll('#tracks li').length === 1`),
		shot("08-phone"),
	)
	var overflow bool
	run("phone layout", chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
	if overflow {
		t.Error("the page scrolls sideways on a phone-sized screen")
	}

	var after int
	run("logout",
		chromedp.Click("#logout", chromedp.ByID),
		chromedp.WaitVisible("#login-button", chromedp.ByID),
		chromedp.Evaluate(`fetch('/api/v1/status').then(r => r.status)`, &after, awaitPromise),
		shot("09-logged-out"),
	)
	if after != 401 {
		t.Fatalf("API after logout: %d", after)
	}
	t.Logf("screenshots in %s", art)
}

// browserPage is one headless Chromium tab with the test's screenshot and
// step helpers.
type browserPage struct {
	t   *testing.T
	ctx context.Context
	art string
}

// newBrowserPage starts Chromium; screenshots are named prefix+name.
func newBrowserPage(t *testing.T, prefix string) *browserPage {
	bp := &browserPage{t: t, art: artifactsDir(t)}
	bp.ctx = newBrowser(t)
	if prefix != "" {
		bp.art = filepath.Join(bp.art, prefix)
		if err := os.MkdirAll(bp.art, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bp
}

// shot saves a full-page PNG into the artifacts dir.
func (bp *browserPage) shot(name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var buf []byte
		if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil { // 100: PNG
			return err
		}
		return os.WriteFile(filepath.Join(bp.art, name+".png"), buf, 0o644)
	})
}

// run performs one named step; a failure saves a screenshot and ends the
// test. Steps get generous time: under -race on a busy 2-core box the
// library's ingest alone takes many seconds.
func (bp *browserPage) run(step string, actions ...chromedp.Action) {
	bp.t.Helper()
	sctx, cancel := context.WithTimeout(bp.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(sctx, actions...); err != nil {
		chromedp.Run(bp.ctx, bp.shot("failed-"+strings.ReplaceAll(step, " ", "-")))
		bp.t.Fatalf("%s: %v", step, err)
	}
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// visibleText waits until the element with id sel is shown, then reads
// its text into text.
func visibleText(sel string, text *string) chromedp.Action {
	return chromedp.Tasks{chromedp.WaitVisible(sel, chromedp.ByID), chromedp.Text(sel, text, chromedp.ByID)}
}

// waitJS polls a JavaScript condition in the page until it holds.
func waitJS(cond string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var ok bool
		for {
			if err := chromedp.Evaluate("!!("+cond+")", &ok).Do(ctx); err != nil {
				return err
			}
			if ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", cond, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// waitFor polls a Go condition with a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// soundCard is the paced null output of a box whose USB sound card can be
// pulled out: while unplugged, writes fail and opening fails, as ALSA does
// when the device is gone. The direct backend then reports a fault.
type soundCard struct{ unplugged atomic.Bool }

var errUnplugged = errors.New("sound card unplugged")

func (c *soundCard) open(context.Context) (player.Sink, error) {
	if c.unplugged.Load() {
		return nil, errUnplugged
	}
	return &unpluggableSink{NullSink: player.NewNullSink(nil), card: c}, nil
}

type unpluggableSink struct {
	*player.NullSink
	card *soundCard
}

func (s *unpluggableSink) Write(p []byte) (int, error) {
	if s.card.unplugged.Load() {
		return 0, errUnplugged
	}
	return s.NullSink.Write(p)
}

// TestBrowserHealthAndOutage drives the page in Chromium through what the
// admin must never misread: the health banner for an admin stop and for a
// fault (the real player's health), the Stop confirmation, the level
// meter's colours, and mohd going away and coming back (the page's server
// is shut down and served again on the same address).
func TestBrowserHealthAndOutage(t *testing.T) {
	card := &soundCard{}
	p, _ := directPlayer(t, player.DirectOptions{
		OpenSink:       card.open,
		SinkBackoff:    50 * time.Millisecond,
		SinkBackoffMax: 200 * time.Millisecond,
	})
	runPlayer(t, p)
	dir := t.TempDir()
	if err := SetPassword(dir, testPW); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Player: p, Library: openLibrary(t, nil), DataDir: dir, Logger: testLogger(t), Version: "browser-test"})
	if err != nil {
		t.Fatal(err)
	}
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	base := "http://" + addr
	// serve runs the server on ln until the returned stop is called (or
	// the test ends), like one life of mohd.
	var stopServing func()
	serve := func(ln net.Listener) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		var once sync.Once
		stopServing = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("server: %v", err)
				}
			})
		}
	}
	serve(ln)
	t.Cleanup(func() { stopServing() })

	bp := newBrowserPage(t, "health")
	run, shot := bp.run, bp.shot
	js := func(step, expr string, out any) {
		t.Helper()
		run(step, chromedp.Evaluate(expr, out))
	}
	const (
		bannerHidden = `document.getElementById('health').classList.contains('hidden')`
		bannerText   = `document.getElementById('health').textContent`
	)

	run("login",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("#login-button", chromedp.ByID),
		chromedp.SendKeys("#password", testPW, chromedp.ByID),
		chromedp.Click("#login-button", chromedp.ByID),
		chromedp.WaitVisible("#now", chromedp.ByID),
		waitJS(`document.getElementById('state').textContent.startsWith('playing')`),
		// Playing the built-in track with audio flowing: health ok, no banner.
		waitJS(bannerHidden+` && document.getElementById('backend').textContent.includes('audio flowing')`),
		shot("01-ok"),
	)

	// The level meter: the gradient spans the whole track, so a quiet
	// level shows only its green end. Measured on the live meter (the
	// gradient's computed size) and on a copy of it held at -54 dBFS
	// (10 % of the -60..0 dBFS track), whose rendered colour at the end of
	// the fill must be the low end's green, not the red of clipping.
	var sizes []float64
	js("meter gradient size", `(() => {
		const l = document.getElementById('level'), m = document.getElementById('meter');
		const bs = getComputedStyle(l).backgroundSize.split(' ');
		return [bs[0].endsWith('px') ? parseFloat(bs[0]) : -1, m.clientWidth];
	})()`, &sizes)
	if len(sizes) != 2 || sizes[1] < 100 || math.Abs(sizes[0]-sizes[1]) > 1 {
		t.Errorf("level meter gradient is %v px wide, the meter track %v px: the gradient must span the track", sizes[0], sizes[1])
	}
	var probe []byte
	run("meter at -54 dBFS",
		chromedp.Evaluate(`(() => {
			const m = document.getElementById('meter').cloneNode(true);
			m.id = 'meter-probe';
			const l = m.firstElementChild;
			l.style.transition = 'none';
			l.style.width = ((-54 + 60) / 60 * 100) + '%';
			document.getElementById('meter').after(m);
		})()`, nil),
		chromedp.Screenshot("#meter-probe", &probe, chromedp.ByID),
		chromedp.Evaluate(`document.getElementById('meter-probe').remove()`, nil),
	)
	if err := os.WriteFile(filepath.Join(bp.art, "02-meter-at-minus-54-dBFS.png"), probe, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(probe))
	if err != nil {
		t.Fatalf("meter probe screenshot: %v", err)
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	// Just inside the right end of the filled 10 %.
	r, g, b, _ := img.At(img.Bounds().Min.X+w*9/100, img.Bounds().Min.Y+h/2).RGBA()
	r, g, b = r>>8, g>>8, b>>8
	if !(g > r+40 && g > b+20) {
		t.Errorf("level meter at -54 dBFS ends in rgb(%d,%d,%d), want the green of a low level", r, g, b)
	}

	// Stop asks first: the first click changes nothing, Cancel keeps
	// playing, Yes stops.
	var question string
	run("stop asks",
		chromedp.Click("#btn-stop", chromedp.ByID),
		chromedp.WaitVisible("#btn-stop-yes", chromedp.ByID),
		chromedp.Text("#stop-confirm", &question, chromedp.ByID),
		shot("03-stop-confirm"),
	)
	if !strings.Contains(question, "Callers will hear silence until you press Play. Stop?") {
		t.Errorf("stop confirmation says %q", question)
	}
	time.Sleep(300 * time.Millisecond)
	if !p.Settings().Playing {
		t.Fatal("the first click on Stop stopped the player without asking")
	}
	run("stop cancel",
		chromedp.Click("#btn-stop-cancel", chromedp.ByID),
		chromedp.WaitVisible("#btn-stop", chromedp.ByID),
		waitJS(`document.getElementById('stop-confirm').offsetParent === null`),
	)
	if !p.Settings().Playing {
		t.Fatal("Cancel stopped the player")
	}

	// An admin stop: amber, callers hear silence.
	run("stop confirmed",
		chromedp.Click("#btn-stop", chromedp.ByID),
		chromedp.WaitVisible("#btn-stop-yes", chromedp.ByID),
		chromedp.Click("#btn-stop-yes", chromedp.ByID),
		waitJS(`document.getElementById('state').textContent.startsWith('stopped')`),
		waitJS(`!(`+bannerHidden+`)`),
		shot("04-stopped-banner"),
	)
	if p.Settings().Playing {
		t.Fatal("Yes, stop did not stop")
	}
	var banner struct {
		Text, Class, Bg string
	}
	bannerNow := `(() => { const b = document.getElementById('health');
		return {Text: b.textContent, Class: b.className, Bg: getComputedStyle(b).backgroundColor}; })()`
	js("read stopped banner", bannerNow, &banner)
	if !strings.HasPrefix(banner.Text, "Callers hear silence: ") || !strings.Contains(banner.Text, p.Status().Health.Reason) ||
		!strings.Contains(banner.Class, "warning") || banner.Bg != "rgb(255, 224, 138)" {
		t.Errorf("banner for an admin stop: %+v, want amber \"Callers hear silence: %s\"", banner, p.Status().Health.Reason)
	}
	run("play clears the banner",
		chromedp.Click("#btn-play", chromedp.ByID),
		waitJS(`document.getElementById('state').textContent.startsWith('playing')`),
		waitJS(bannerHidden),
	)

	// A fault: the sound card is pulled out while playback is wanted. Red.
	card.unplugged.Store(true)
	run("fault banner",
		waitJS(`document.getElementById('health').className.includes('critical')`),
		shot("05-fault-banner"),
	)
	js("read fault banner", bannerNow, &banner)
	if !strings.HasPrefix(banner.Text, "Callers hear silence: ") || !strings.Contains(banner.Text, "unplugged") ||
		banner.Bg != "rgb(179, 38, 30)" {
		t.Errorf("banner for a fault: %+v, want red \"Callers hear silence: …unplugged\"", banner)
	}
	// Nothing reaches the output, so the meter must not show the level of
	// the last block that did.
	var faultLevel string
	js("read fault level", `parseFloat(document.getElementById('level').style.width) + '% ' + document.getElementById('level-text').textContent`, &faultLevel)
	if faultLevel != "0% silence" {
		t.Errorf("level meter during the fault: %q, want \"0%% silence\"", faultLevel)
	}
	card.unplugged.Store(false)
	run("fault cleared",
		waitJS(`document.getElementById('state').textContent.startsWith('playing')`),
		waitJS(bannerHidden),
	)

	// mohd goes away: the page shows an outage, not its last answer.
	stopServing()
	run("outage shown",
		waitJS(`document.getElementById('state').className.includes('unreachable')`),
		shot("06-outage"),
	)
	var out struct {
		Badge, BadgeBg, Banner, BannerBg, Level, LevelText, Backend, Position string
		Disabled                                                              []bool
		Offline                                                               bool
	}
	js("read outage", `(() => { const $ = (id) => document.getElementById(id);
		return {Badge: $('state').textContent, BadgeBg: getComputedStyle($('state')).backgroundColor,
			Banner: $('health').textContent, BannerBg: getComputedStyle($('health')).backgroundColor,
			Level: $('level').style.width, LevelText: $('level-text').textContent,
			Backend: $('backend').textContent, Position: $('position-text').textContent,
			Disabled: ['btn-play', 'btn-stop', 'btn-next', 'volume'].map((id) => $(id).matches(':disabled')),
			Offline: document.body.classList.contains('offline')}; })()`, &out)
	t.Logf("outage: %+v", out)
	if out.Badge != "unreachable" || out.BadgeBg != "rgb(179, 38, 30)" {
		t.Errorf("badge during the outage: %q on %s, want \"unreachable\" on red", out.Badge, out.BadgeBg)
	}
	if !strings.Contains(out.Banner, "mohd is not answering — the page retries by itself; callers may hear silence") || out.BannerBg != "rgb(179, 38, 30)" {
		t.Errorf("banner during the outage: %q on %s", out.Banner, out.BannerBg)
	}
	if out.Level != "0%" || strings.Contains(out.LevelText, "dBFS") || strings.Contains(out.Backend, "audio flowing") || out.Position != "" {
		t.Errorf("stale live values during the outage: level %q %q, backend %q, position %q", out.Level, out.LevelText, out.Backend, out.Position)
	}
	if len(out.Disabled) != 4 || !out.Disabled[0] || !out.Disabled[1] || !out.Disabled[2] || !out.Disabled[3] || !out.Offline {
		t.Errorf("controls during the outage: disabled %v (play, stop, next, volume), page offline %v", out.Disabled, out.Offline)
	}
	// An action that is tried anyway says so in plain words.
	var actionErr string
	run("action during the outage",
		chromedp.SendKeys("#token-name", "fleet", chromedp.ByID),
		chromedp.Click("#token-create", chromedp.ByID),
		visibleText("#page-error", &actionErr),
		shot("07-outage-action"),
	)
	if !strings.Contains(actionErr, "mohd is not answering") || strings.Contains(strings.ToLower(actionErr), "fetch") {
		t.Errorf("failed action during the outage says %q", actionErr)
	}

	// mohd is back on the same address: the page recovers by itself.
	var ln2 net.Listener
	for i := 0; ; i++ {
		if ln2, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	back := time.Now()
	serve(ln2)
	run("recovered",
		waitJS(`document.getElementById('state').textContent.startsWith('playing') &&
			!document.body.classList.contains('offline') &&
			!document.getElementById('btn-play').matches(':disabled') &&
			!document.getElementById('volume').matches(':disabled') &&
			document.getElementById('backend').textContent.includes('audio flowing') &&
			document.getElementById('page-error').offsetParent === null &&
			`+bannerHidden),
		shot("08-recovered"),
	)
	took := time.Since(back)
	t.Logf("page recovered %v after mohd came back", took.Round(10*time.Millisecond))
	// The poll backs off to 5 s at most.
	if took > 8*time.Second {
		t.Errorf("the page took %v to notice mohd was back", took)
	}
	t.Logf("screenshots in %s", bp.art)
}

package webui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
		chromedp.UserDataDir(t.TempDir()),
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

	art := artifactsDir(t)
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil { // 100: PNG
				return err
			}
			return os.WriteFile(filepath.Join(art, name+".png"), buf, 0o644)
		})
	}
	ctx := newBrowser(t)
	// Steps get generous time: under -race on a busy 2-core box the
	// library's ingest alone takes many seconds.
	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Run(sctx, actions...); err != nil {
			chromedp.Run(ctx, shot("failed-"+strings.ReplaceAll(step, " ", "-")))
			t.Fatalf("%s: %v", step, err)
		}
	}

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
		chromedp.WaitVisible("#form-error", chromedp.ByID),
		chromedp.Text("#form-error", &errText, chromedp.ByID),
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

	// Stop and play from the buttons; the real backend follows.
	run("stop", chromedp.Click("#btn-stop", chromedp.ByID), waitJS(`document.getElementById('state').textContent.startsWith('stopped')`))
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
		chromedp.WaitVisible("#new-token", chromedp.ByID),
		chromedp.Text("#new-token", &tokText, chromedp.ByID),
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

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

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

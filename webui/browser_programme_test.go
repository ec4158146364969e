package webui

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mohproject/moh/internal/programme"
	"github.com/mohproject/moh/player"
)

type engineProgramme struct {
	st  *programme.Store
	eng *programme.Engine
}

func (p engineProgramme) Store() *programme.Store      { return p.st }
func (p engineProgramme) Current() programme.Programme { return p.eng.Programme() }

// TestBrowserProgramme drives the programme card in real Chromium over a
// real player and engine: the now/next line, the override button with
// its confirmation (cancel changes nothing; yes makes the track audible),
// and clearing it.
func TestBrowserProgramme(t *testing.T) {
	lib := openLibrary(t, nil)
	seedDir := t.TempDir()
	var ids []string
	for _, s := range []struct {
		name string
		secs float64
		freq int
	}{{"Welcome.mp3", 3, 330}, {"Closed today.mp3", 2, 880}} {
		f, err := os.Open(makeMP3(t, seedDir, s.name, s.secs, s.freq))
		if err != nil {
			t.Fatal(err)
		}
		tr, _, err := lib.Ingest(context.Background(), s.name, f, nil)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tr.ID)
	}
	p, d := realPlayer(t, lib)
	dir := t.TempDir()
	if err := SetPassword(dir, testPW); err != nil {
		t.Fatal(err)
	}
	st, err := programme.Open(dir, ids[:1], func(id string) bool { _, ok := lib.Get(id); return ok })
	if err != nil {
		t.Fatal(err)
	}
	// A rule that starts at the next full hour, so the line has a next.
	next := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	if err := st.PutPlaylist(programme.Playlist{Name: "business", Tracks: ids}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSchedule(programme.Schedule{Timezone: "UTC", Default: "default", Rules: []programme.Rule{{Name: "business-hours",
		Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, From: next.Format("15:04"), To: next.Add(time.Hour).Format("15:04"), Playlist: "business"}}}); err != nil {
		t.Fatal(err)
	}
	tracks := func() []player.Track {
		var out []player.Track
		for _, tr := range lib.Tracks() {
			out = append(out, player.Track{ID: tr.ID, Name: tr.Name, Path: tr.Path})
		}
		return out
	}
	eng := programme.NewEngine(programme.EngineOptions{Store: st, Tracks: tracks, SetPlaylist: p.SetPlaylist, SwitchNow: p.SwitchNow,
		OnAir: func() string {
			if tr := d.Status().Track; tr != nil {
				return tr.ID
			}
			return ""
		}, Logger: testLogger(t)})
	eng.Apply()
	ctx0, stop := context.WithCancel(context.Background())
	engDone := make(chan struct{})
	go func() { eng.Run(ctx0); close(engDone) }()
	s, err := New(Options{Player: p, Library: lib, Programme: engineProgramme{st, eng}, DataDir: dir, Logger: testLogger(t), Version: "browser-test"})
	if err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	ln := listenLoopback(t)
	go func() { srvDone <- s.Serve(ctx0, ln) }()
	t.Cleanup(func() {
		stop()
		<-engDone
		if err := <-srvDone; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	bp := newBrowserPage(t, "programme")
	shot, run := bp.shot, bp.run
	nowLine := `document.getElementById('programme-now').textContent`
	var line string
	run("login",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible("#login-button", chromedp.ByID),
		chromedp.SendKeys("#password", testPW, chromedp.ByID),
		chromedp.Click("#login-button", chromedp.ByID),
		chromedp.WaitVisible("#programme", chromedp.ByID),
		waitJS(nowLine+`.startsWith('now: default (default) · next: business at ')`),
		waitJS(`document.querySelectorAll('#override-what option').length === 4`), // 2 tracks, 2 playlists
		waitJS(`document.querySelector('#week-row td').textContent.includes('business-hours')`),
		chromedp.Evaluate(nowLine, &line),
		shot("01-programme"),
	)
	wantTime := next.Format("15:04") // Chromium runs in UTC here
	if !strings.HasSuffix(line, " "+wantTime) {
		t.Fatalf("now/next line %q, want it to end at %s", line, wantTime)
	}

	closed := fmt.Sprintf("track:%s", ids[1])
	run("override: cancel",
		chromedp.SetValue("#override-what", closed, chromedp.ByID),
		chromedp.Click("#override-btn", chromedp.ByID),
		chromedp.WaitVisible("#override-confirm", chromedp.ByID),
		chromedp.Evaluate(`document.getElementById('override-question').textContent`, &line),
		shot("02-override-confirm"),
		chromedp.Click("#override-cancel", chromedp.ByID),
		chromedp.WaitNotVisible("#override-confirm", chromedp.ByID),
	)
	if !strings.Contains(line, "Closed today") || !strings.Contains(line, "until you clear it") {
		t.Fatalf("confirmation %q", line)
	}
	time.Sleep(300 * time.Millisecond)
	if o := st.Override(time.Now()); o != nil {
		t.Fatalf("cancel set an override: %+v", o)
	}

	run("override: yes",
		chromedp.Click("#override-btn", chromedp.ByID),
		chromedp.WaitVisible("#override-yes", chromedp.ByID),
		chromedp.Click("#override-yes", chromedp.ByID),
		waitJS(nowLine+` === 'now: override: track Closed today.mp3'`),
		chromedp.WaitVisible("#override-clear", chromedp.ByID),
		shot("03-override-on"),
	)
	waitFor(t, "the override track on air", func() bool {
		tr := d.Status().Track
		return tr != nil && tr.ID == ids[1]
	})

	run("override: clear",
		chromedp.Click("#override-clear", chromedp.ByID),
		waitJS(nowLine+`.startsWith('now: default (default)')`),
		chromedp.WaitNotVisible("#override-clear", chromedp.ByID),
		shot("04-override-cleared"),
	)
	waitFor(t, "the default playlist back on air", func() bool {
		tr := d.Status().Track
		return tr != nil && tr.ID == ids[0]
	})
}

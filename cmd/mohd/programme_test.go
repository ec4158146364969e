package main

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// progUpload encodes secs of a sine with sox and lame and uploads it;
// it returns the track id.
func progUpload(t *testing.T, c *apiClient, name string, secs, freq int) string {
	t.Helper()
	b := ddMP3(t, float64(secs), freq)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name+".mp3")
	fw.Write(b)
	mw.Close()
	req, _ := http.NewRequest("POST", c.base+"/api/v1/tracks", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 201 {
		t.Fatalf("upload %s: %d %v", name, resp.StatusCode, err)
	}
	return tr.ID
}

type progStatus struct {
	State string `json:"state"`
	Track *struct {
		ID string `json:"id"`
	} `json:"track"`
	Programme *struct {
		Playlist string `json:"playlist"`
		Track    string `json:"track"`
		Reason   string `json:"reason"`
		Rule     string `json:"rule"`
	} `json:"programme"`
}

// progFirstTrack waits for the first track on air after a start and
// returns it with the programme then.
func progFirstTrack(t *testing.T, c *apiClient, d *mohdProc) progStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if d.Exited() {
			t.Fatalf("mohd exited:\n%s", d.Log)
		}
		var s progStatus
		if code, err := c.do("GET", "/api/v1/status", nil, &s); err == nil && code == 200 && s.Track != nil && s.State == "playing" {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no track on air within 20 s:\n%s", d.Log)
	return progStatus{}
}

// TestProgrammeSurvivesKill9 cuts the power (SIGKILL) of a real mohd
// mid-rule and during an override: each restart plays the programme in
// force from its first track, and an override that ended while the box
// was down is over.
func TestProgrammeSurvivesKill9(t *testing.T) {
	data := t.TempDir()
	c := &apiClient{token: createToken(t, data, "admin"), hc: &http.Client{Timeout: 10 * time.Second}}
	start := func() *mohdProc {
		addr := testkit.FreeAddr(t)
		c.base = "http://" + addr
		return startDaemon(t, data, addr)
	}
	d := start()
	waitHealthy(t, c.base)
	progUpload(t, c, "music", 2, 440) // the playlist default
	closed := progUpload(t, c, "closed", 2, 660)
	alert := progUpload(t, c, "alert", 1, 880)
	if code, err := c.do("POST", "/api/v1/playlists", map[string]any{"name": "all-day", "tracks": []string{closed}}, nil); err != nil || code != 201 {
		t.Fatalf("playlist: %d %v", code, err)
	}
	sched := map[string]any{"timezone": "Europe/London", "default": "default",
		"rules": []map[string]any{{"name": "always", "days": []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, "from": "00:00", "to": "00:00", "playlist": "all-day"}}}
	if code, err := c.do("PUT", "/api/v1/schedule", sched, nil); err != nil || code != 200 {
		t.Fatalf("schedule: %d %v", code, err)
	}

	// Mid-rule.
	d.Kill()
	d = start()
	s := progFirstTrack(t, c, d)
	if s.Programme == nil || s.Programme.Reason != "rule" || s.Programme.Playlist != "all-day" || s.Track.ID != closed {
		t.Fatalf("after a power cut mid-rule: programme %+v, first track %s; want the rule's all-day and %s", s.Programme, s.Track.ID, closed)
	}

	// During an override that ends in 4 s.
	until := time.Now().Add(4 * time.Second)
	if code, err := c.do("PUT", "/api/v1/override", map[string]any{"track": alert, "until": until.UTC().Format(time.RFC3339Nano)}, nil); err != nil || code != 200 {
		t.Fatalf("override: %d %v", code, err)
	}
	d.Kill()
	d = start()
	s = progFirstTrack(t, c, d)
	if s.Programme == nil || s.Programme.Reason != "override" || s.Programme.Track != alert || s.Track.ID != alert {
		t.Fatalf("after a power cut during an override: programme %+v, first track %s; want the override's %s", s.Programme, s.Track.ID, alert)
	}

	// Down across the override's end: it is over when the box returns.
	d.Kill()
	time.Sleep(time.Until(until))
	d = start()
	s = progFirstTrack(t, c, d)
	if s.Programme == nil || s.Programme.Reason != "rule" || s.Track.ID != closed {
		t.Fatalf("after the override ended while down: programme %+v, first track %s; want the rule's %s", s.Programme, s.Track.ID, closed)
	}
	d.Kill()
}

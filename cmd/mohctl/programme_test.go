package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/testkit"
)

// progFleet is n real mohd boxes linked to a real mosquitto, each with
// the track alert, and the mohctl flags for both transports.
type progFleet struct {
	boxes     []*realBox
	inv       string
	via       []string
	alertFile string
}

func newProgFleet(t testing.TB, n int) *progFleet {
	t.Helper()
	bin := testkit.MustBuildMohd(t, realVersion)
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	groups := map[string][]string{}
	for i := range n {
		groups[fmt.Sprintf("box%02d", i)] = []string{"site"}
	}
	broker := fleettest.MustBroker(t, dir, ca, fleettest.ACL(groups))
	f := &progFleet{boxes: make([]*realBox, n)}
	var inv Inventory
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("box%02d", i)
		cert, key := ca.MustIssue(t, name, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.boxes[i] = testkit.StartMohd(t, bin, name, "--mqtt-broker", broker.URL(), "--mqtt-ca", ca.CAFile,
				"--mqtt-cert", cert, "--mqtt-key", key, "--device-id", name, "--groups", "site")
		}()
	}
	wg.Wait()
	for _, b := range f.boxes {
		inv.Boxes = append(inv.Boxes, Box{Name: b.Name, URL: b.URL(), Token: b.Token, TokenID: b.TokenID, Groups: []string{"site"}})
	}
	f.inv = filepath.Join(dir, "inventory.json")
	raw, _ := json.Marshal(inv)
	if err := os.WriteFile(f.inv, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	opCert, opKey := ca.MustIssue(t, "operator", false)
	f.via = []string{"--inventory", f.inv, "--via", broker.URL(), "--ca", ca.CAFile, "--cert", opCert, "--key", opKey, "--timeout", "10s"}
	// One short track on every box, pushed over HTTP as an operator does.
	mp3, music := filepath.Join(dir, "alert.mp3"), filepath.Join(dir, "music.mp3")
	testkit.SineMP3(t, mp3, 3, 880, 0.3, 128)
	f.alertFile = mp3
	testkit.SineMP3(t, music, 20, 440, 0.3, 128)
	for _, file := range []string{mp3, music} {
		if code, out, errOut := runCLI(t, "--inventory", f.inv, "--parallel", "4", "push", file); code != 0 {
			t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
		}
	}
	// The music alone plays, so the override has a track to fade out.
	for _, b := range f.boxes {
		c := &apiClient{base: b.URL(), token: b.Token}
		var list struct{ Tracks []struct{ ID, Name string } }
		if code := c.doJSON(t, "GET", "/api/v1/tracks", nil, &list); code != 200 {
			t.Fatalf("%s: tracks %d", b.Name, code)
		}
		for _, tr := range list.Tracks {
			if tr.Name == "music.mp3" {
				if code := c.doJSON(t, "PUT", "/api/v1/playlists/default", map[string]any{"tracks": []string{tr.ID}}, nil); code != 200 {
					t.Fatalf("%s: playlist %d", b.Name, code)
				}
			}
		}
	}
	f.waitMusic(t)
	return f
}

// waitMusic waits until every box plays its music, so the next override
// has a track to fade out.
func (f *progFleet) waitMusic(t testing.TB) {
	t.Helper()
	for _, b := range f.boxes {
		c := &apiClient{base: b.URL(), token: b.Token}
		deadline := time.Now().Add(10 * time.Second)
		for {
			var st struct{ Track *struct{ Name string } }
			c.doJSON(t, "GET", "/api/v1/status", nil, &st)
			if st.Track != nil && st.Track.Name == "music.mp3" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the music is not on air", b.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

type apiClient struct{ base, token string }

func (c *apiClient) doJSON(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

var audibleRE = regexp.MustCompile(`override audible after ([0-9.]+) s`)

// overrideAll runs `mohctl override alert` with args and returns each
// box's time to audible.
func (f *progFleet) overrideAll(t testing.TB, args ...string) []time.Duration {
	t.Helper()
	code, out, errOut := runCLI(t, append(args, "-o", "json", "override", "alert", "--until", "10m", "--group", "site")...)
	var res []outcome
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res) != len(f.boxes) {
		t.Fatalf("override: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	var ds []time.Duration
	for _, r := range res {
		m := audibleRE.FindStringSubmatch(r.Msg)
		if !r.OK || m == nil {
			t.Fatalf("%s: %+v", r.Box, r)
		}
		s, _ := strconv.ParseFloat(m[1], 64)
		ds = append(ds, time.Duration(s*float64(time.Second)))
	}
	return ds
}

func (f *progFleet) clearAll(t testing.TB, args ...string) {
	t.Helper()
	if code, out, errOut := runCLI(t, append(args, "override", "clear", "--group", "site")...); code != 0 {
		t.Fatalf("override clear: exit %d\n%s%s", code, out, errOut)
	}
}

func boxProgramme(t testing.TB, b *realBox) (reason, track string) {
	t.Helper()
	req, _ := http.NewRequest("GET", b.URL()+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+b.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Track     *struct{ ID string } `json:"track"`
		Programme *struct {
			Reason string `json:"reason"`
			Track  string `json:"track"`
		} `json:"programme"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	if d.Programme == nil {
		t.Fatalf("%s: no programme in status", b.Name)
	}
	return d.Programme.Reason, d.Programme.Track
}

// TestProgrammeFleet sets a YAML schedule and an override on real boxes,
// over HTTP and over the broker, and clears it again: each box reports
// when the override became audible, and its status agrees.
func TestProgrammeFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd and mosquitto")
	}
	f := newProgFleet(t, 3)
	sched := filepath.Join(t.TempDir(), "schedule.yaml")
	os.WriteFile(sched, []byte(`timezone: Europe/Paris
default: default
rules:
  - name: business-hours
    days: [mon, tue, wed, thu, fri]
    from: "08:00"
    to: "18:00"
    playlist: default
exceptions:
  - {from: "2026-12-24", to: "2026-12-26", yearly: true, playlist: default}
`), 0o644)
	for name, args := range map[string][]string{"http": {"--inventory", f.inv}, "mqtt": f.via} {
		t.Run(name, func(t *testing.T) {
			if code, out, errOut := runCLI(t, append(args, "schedule", "set", sched, "--group", "site")...); code != 0 || strings.Count(out, "schedule set (Europe/Paris, 1 rules, 1 exceptions)") != 3 {
				t.Fatalf("schedule set: exit %d\n%s%s", code, out, errOut)
			}
			ds := f.overrideAll(t, args...)
			t.Logf("time to audible over %s: %v", name, ds)
			for _, b := range f.boxes {
				if reason, _ := boxProgramme(t, b); reason != "override" {
					t.Fatalf("%s: reason %s after the override", b.Name, reason)
				}
			}
			f.clearAll(t, args...)
			defer f.waitMusic(t)
			for _, b := range f.boxes {
				deadline := time.Now().Add(2 * time.Second)
				for {
					reason, _ := boxProgramme(t, b)
					if reason == "rule" || reason == "default" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: reason %s 2 s after the clear", b.Name, reason)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	// Misuse is refused before any box is touched.
	for _, args := range [][]string{{"override"}, {"override", "alert", "--playlist", "p"}, {"override", "clear", "--until", "1h"}, {"override", "alert", "--until", "soon"}} {
		if code, _, _ := runCLI(t, append([]string{"--inventory", f.inv}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// BenchmarkOverrideAudible20 is the time from `mohctl override` through
// a real mosquitto to the override being audible (status: reason
// override and the track on air) on 20 real boxes: median and worst.
func BenchmarkOverrideAudible20(b *testing.B) {
	f := newProgFleet(b, 20)
	var all []time.Duration
	for b.Loop() {
		all = append(all, f.overrideAll(b, f.via...)...)
		f.clearAll(b, f.via...)
		f.waitMusic(b)
	}
	slices.Sort(all)
	b.ReportMetric(all[len(all)/2].Seconds(), "median-s")
	b.ReportMetric(all[len(all)-1].Seconds(), "worst-s")
}

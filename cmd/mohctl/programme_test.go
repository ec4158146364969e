package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
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
	bin, err := buildMohd()
	if err != nil {
		t.Fatalf("build mohd: %v", err)
	}
	dir := t.TempDir()
	ca, err := fleettest.NewCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{}
	for i := range n {
		groups[fmt.Sprintf("box%02d", i)] = []string{"site"}
	}
	broker, err := fleettest.StartBroker(dir, ca, fleettest.ACL(groups))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Stop)
	f := &progFleet{boxes: make([]*realBox, n)}
	var inv Inventory
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("box%02d", i)
		cert, key, err := ca.Issue(name, false)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.boxes[i] = startMohdTB(t, bin, name, "--mqtt-broker", broker.URL(), "--mqtt-ca", ca.CAFile,
				"--mqtt-cert", cert, "--mqtt-key", key, "--device-id", name, "--groups", "site")
		}()
	}
	wg.Wait()
	for _, b := range f.boxes {
		inv.Boxes = append(inv.Boxes, Box{Name: b.name, URL: "http://" + b.addr, Token: b.token, TokenID: b.tokenID, Groups: []string{"site"}})
	}
	f.inv = filepath.Join(dir, "inventory.json")
	raw, _ := json.Marshal(inv)
	if err := os.WriteFile(f.inv, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	opCert, opKey, err := ca.Issue("operator", false)
	if err != nil {
		t.Fatal(err)
	}
	f.via = []string{"--inventory", f.inv, "--via", broker.URL(), "--ca", ca.CAFile, "--cert", opCert, "--key", opKey, "--timeout", "10s"}
	// One short track on every box, pushed over HTTP as an operator does.
	wav, mp3 := filepath.Join(dir, "alert.wav"), filepath.Join(dir, "alert.mp3")
	if out, err := exec.Command("sox", "-n", "-r", "44100", "-c", "2", "-b", "16", wav, "synth", "3", "sine", "880", "vol", "0.3").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	if out, err := exec.Command("lame", "--quiet", "-b", "128", wav, mp3).CombinedOutput(); err != nil {
		t.Fatalf("lame: %v %s", err, out)
	}
	f.alertFile = mp3
	music := filepath.Join(dir, "music.mp3")
	if out, err := exec.Command("sox", "-n", "-r", "44100", "-c", "2", "-b", "16", wav, "synth", "20", "sine", "440", "vol", "0.3").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	if out, err := exec.Command("lame", "--quiet", "-b", "128", wav, music).CombinedOutput(); err != nil {
		t.Fatalf("lame: %v %s", err, out)
	}
	for _, file := range []string{mp3, music} {
		if code, out, errOut := runCLI(t, "--inventory", f.inv, "--parallel", "4", "push", file); code != 0 {
			t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
		}
	}
	// The music alone plays, so the override has a track to fade out.
	for _, b := range f.boxes {
		c := &apiClient{base: "http://" + b.addr, token: b.token}
		var list struct{ Tracks []struct{ ID, Name string } }
		if code := c.doJSON(t, "GET", "/api/v1/tracks", nil, &list); code != 200 {
			t.Fatalf("%s: tracks %d", b.name, code)
		}
		for _, tr := range list.Tracks {
			if tr.Name == "music.mp3" {
				if code := c.doJSON(t, "PUT", "/api/v1/playlists/default", map[string]any{"tracks": []string{tr.ID}}, nil); code != 200 {
					t.Fatalf("%s: playlist %d", b.name, code)
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
		c := &apiClient{base: "http://" + b.addr, token: b.token}
		deadline := time.Now().Add(10 * time.Second)
		for {
			var st struct{ Track *struct{ Name string } }
			c.doJSON(t, "GET", "/api/v1/status", nil, &st)
			if st.Track != nil && st.Track.Name == "music.mp3" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the music is not on air", b.name)
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

// startMohdTB is startMohd (realmohd_test.go) for a benchmark too.
func startMohdTB(t testing.TB, bin, name string, extra ...string) *realBox {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &realBox{name: name, addr: l.Addr().String(), data: t.TempDir()}
	l.Close()
	out, err := exec.Command(bin, "token", "create", "--scope", "admin", "--data", b.data).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	b.token = strings.TrimSpace(string(out))
	b.cmd = exec.Command(bin, append([]string{"run", "--data", b.data, "--listen", b.addr, "--output", "null"}, extra...)...)
	lw := &lockedLog{}
	b.cmd.Stdout, b.cmd.Stderr = lw, lw
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, lw.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+b.addr+"/api/v1/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct{ Tokens []tokenInfo }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(body.Tokens) == 1 {
				b.tokenID = body.Tokens[0].ID
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: API not up: %v", name, err)
			return b
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedLog is a daemon's output, written by exec's copier while a
// failing test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

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
	req, _ := http.NewRequest("GET", "http://"+b.addr+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
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
		t.Fatalf("%s: no programme in status", b.name)
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
					t.Fatalf("%s: reason %s after the override", b.name, reason)
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
						t.Fatalf("%s: reason %s 2 s after the clear", b.name, reason)
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

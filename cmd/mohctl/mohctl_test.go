package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

type fleetFixture struct {
	inv   string
	boxes map[string]*fakeBox
}

// newFleet writes an inventory for boxes named in groups; a name in down
// gets the address of a server that is already closed.
func newFleet(t testing.TB, groups map[string][]string, down ...string) *fleetFixture {
	t.Helper()
	fx := &fleetFixture{inv: filepath.Join(t.TempDir(), "inventory.json"), boxes: map[string]*fakeBox{}}
	var inv Inventory
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b := Box{Name: n, Token: "moh_tok_" + n, Groups: groups[n]}
		if slices.Contains(down, n) {
			dead := httptest.NewServer(nil)
			b.URL = dead.URL
			dead.Close()
		} else {
			fb := newFakeBox(t, b.Token)
			fx.boxes[n] = fb
			b.URL = fb.srv.URL
		}
		inv.Boxes = append(inv.Boxes, b)
	}
	raw, _ := json.MarshalIndent(inv, "", "  ")
	if err := os.WriteFile(fx.inv, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return fx
}

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, now: func() time.Time { return testNow }, getenv: func(string) string { return "" }}
	code := c.run(context.Background(), args)
	return code, out.String(), errb.String()
}

func line(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	t.Fatalf("no line for %q in:\n%s", prefix, out)
	return ""
}

func TestStatusShowsDownBoxAndFails(t *testing.T) {
	fx := newFleet(t, map[string][]string{"lyon": {"fr"}, "paris": {"fr"}, "berlin": {"de"}}, "lyon")
	fx.boxes["paris"].events = []map[string]any{
		{"time": testNow.Add(-time.Hour), "kind": "recovered", "fault": "stalled"},
		{"time": testNow.Add(-2 * time.Hour), "kind": "fault", "fault": "stalled"},
		{"time": testNow.Add(-3 * time.Hour), "kind": "recovered", "fault": "silent"},
		{"time": testNow.Add(-25 * time.Hour), "kind": "recovered", "fault": "stalled"},
	}
	fx.boxes["paris"].tracks = []track{{ID: "a1", Name: "Welcome.mp3"}}

	code, out, errOut := runCLI(t, "--inventory", fx.inv, "status")
	if code != player.HealthCritical.Code() {
		t.Fatalf("exit %d with a box down; stderr %s", code, errOut)
	}
	if !strings.Contains(errOut, "1 of 3 boxes failed") {
		t.Errorf("stderr = %q", errOut)
	}
	if !strings.HasPrefix(out, "NAME") || strings.Count(out, "\n") != 4 {
		t.Errorf("want a header and 3 rows:\n%s", out)
	}
	l := line(t, out, "lyon")
	if !strings.Contains(l, "DOWN") || !strings.Contains(l, "unreachable") || !strings.Contains(l, "CRITICAL") {
		t.Errorf("lyon row = %q", l)
	}
	p := line(t, out, "paris")
	for _, w := range []string{"OK", "playing", "Welcome.mp3", "3h00m", " 2 ", "2.0G free (25%)", "1.0.0", "now"} {
		if !strings.Contains(p, w) {
			t.Errorf("paris row %q lacks %q", p, w)
		}
	}

	// JSON carries the same, and the down box's last-seen survives from
	// the earlier run once it was up.
	code, out, _ = runCLI(t, "--inventory", fx.inv, "status", "-o", "json")
	var rows []row
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != player.HealthCritical.Code() || len(rows) != 3 {
		t.Fatalf("json: code %d err %v\n%s", code, err, out)
	}
	if rows[1].Name != "lyon" || rows[1].OK || rows[1].Error == "" || rows[1].Health != "critical" || *rows[2].Recoveries24h != 2 || rows[2].Health != "ok" {
		t.Errorf("rows = %+v", rows)
	}

	// All up in group de: exit 0.
	if code, out, _ = runCLI(t, "--inventory", fx.inv, "status", "--group", "de"); code != exitOK || strings.Count(out, "\n") != 2 {
		t.Errorf("group de: exit %d\n%s", code, out)
	}
	if code, _, errOut = runCLI(t, "--inventory", fx.inv, "status", "--group", "xx"); code != exitFailed || !strings.Contains(errOut, `no box in group "xx"`) {
		t.Errorf("unknown group: exit %d %s", code, errOut)
	}
}

// The exit status is the fleet's health: a stopped box is a warning (1),
// a box with a fault is critical (2), whatever the others do.
func TestStatusExitIsFleetHealth(t *testing.T) {
	fx := newFleet(t, map[string][]string{"a": nil, "b": nil})
	if code, out, _ := runCLI(t, "--inventory", fx.inv, "status"); code != 0 || !strings.Contains(line(t, out, "a"), "OK") {
		t.Fatalf("all playing: exit %d\n%s", code, out)
	}
	fx.boxes["b"].state = "stopped"
	code, out, _ := runCLI(t, "--inventory", fx.inv, "status")
	if l := line(t, out, "b"); code != 1 || !strings.Contains(l, "WARNING") || !strings.Contains(l, "stopped by the admin") {
		t.Fatalf("one stopped: exit %d\n%s", code, out)
	}
	fx.boxes["a"].fault = "device-missing: no sound card"
	code, out, _ = runCLI(t, "--inventory", fx.inv, "status")
	if l := line(t, out, "a"); code != 2 || !strings.Contains(l, "CRITICAL") || !strings.Contains(l, "no sound card") {
		t.Fatalf("one faulty: exit %d\n%s", code, out)
	}
}

func TestLastSeenRemembered(t *testing.T) {
	fx := newFleet(t, map[string][]string{"a": nil})
	if code, _, _ := runCLI(t, "--inventory", fx.inv, "status"); code != exitOK {
		t.Fatal("first status failed")
	}
	fx.boxes["a"].srv.Close()
	_, out, _ := runCLI(t, "--inventory", fx.inv, "status", "-o", "json")
	var rows []row
	json.Unmarshal([]byte(out), &rows)
	if len(rows) != 1 || rows[0].OK || !rows[0].LastSeen.Equal(testNow) {
		t.Fatalf("rows = %+v", rows)
	}
}

func TestControlCommandsPerBoxLines(t *testing.T) {
	fx := newFleet(t, map[string][]string{"a": {"g"}, "b": {"g"}, "c": nil})
	// b's token was revoked on the box: its line must say so.
	fx.boxes["b"].tokens = map[string]string{"other": "x"}

	code, out, errOut := runCLI(t, "--inventory", fx.inv, "volume", "30", "--group", "g")
	if code != exitFailed || !strings.Contains(errOut, "1 of 2 boxes failed") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if l := line(t, out, "a"); !strings.Contains(l, "ok") || !strings.Contains(l, "volume 30") {
		t.Errorf("a: %q", l)
	}
	if l := line(t, out, "b"); !strings.Contains(l, "FAILED") || !strings.Contains(l, "HTTP 401 unauthorized") {
		t.Errorf("b: %q", l)
	}
	if fx.boxes["a"].volume != 30 || fx.boxes["c"].volume != 50 {
		t.Errorf("volumes a=%d c=%d", fx.boxes["a"].volume, fx.boxes["c"].volume)
	}
	if code, _, _ = runCLI(t, "--inventory", fx.inv, "stop", "--group", "g"); code != exitFailed {
		t.Errorf("stop exit %d", code)
	}
	if fx.boxes["a"].state != "stopped" || fx.boxes["c"].state != "playing" {
		t.Errorf("states a=%s c=%s", fx.boxes["a"].state, fx.boxes["c"].state)
	}
	for _, args := range [][]string{{"volume", "101"}, {"volume", "x"}, {"frobnicate"}, {"push"}, {"status", "-o", "yaml"}} {
		if code, _, _ := runCLI(t, append([]string{"--inventory", fx.inv}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage", args, code)
		}
	}
}

func TestPushRemovePlaylist(t *testing.T) {
	fx := newFleet(t, map[string][]string{"a": {"g"}, "b": {"g"}})
	dir := t.TempDir()
	for _, n := range []string{"one.mp3", "two.mp3"} {
		os.WriteFile(filepath.Join(dir, n), []byte("audio "+n), 0o600)
	}
	for _, n := range []string{"one.mp3", "two.mp3"} {
		if code, out, errOut := runCLI(t, "--inventory", fx.inv, "push", filepath.Join(dir, n), "--group", "g"); code != exitOK {
			t.Fatalf("push %s: %d %s %s", n, code, out, errOut)
		}
	}
	if code, _, _ := runCLI(t, "--inventory", fx.inv, "push", filepath.Join(dir, "missing.mp3")); code != exitFailed {
		t.Errorf("push of a missing file: exit %d", code)
	}
	code, out, _ := runCLI(t, "--inventory", fx.inv, "playlist", "set", "two", "--group", "g")
	if code != exitOK {
		t.Fatalf("playlist set: %d %s", code, out)
	}
	_, out, _ = runCLI(t, "--inventory", fx.inv, "playlist")
	if l := line(t, out, "a"); !strings.Contains(l, "1. two.mp3") || !strings.Contains(l, "2. one.mp3") {
		t.Errorf("playlist a: %q", l)
	}
	if code, out, _ = runCLI(t, "--inventory", fx.inv, "remove", "one.mp3"); code != exitOK {
		t.Fatalf("remove: %d %s", code, out)
	}
	if n := len(fx.boxes["b"].tracks); n != 1 || fx.boxes["b"].tracks[0].Name != "two.mp3" {
		t.Errorf("b tracks = %+v", fx.boxes["b"].tracks)
	}
	code, out, _ = runCLI(t, "--inventory", fx.inv, "remove", "one.mp3")
	if code != exitFailed || !strings.Contains(out, `no track "one.mp3" on this box`) {
		t.Errorf("second remove: %d %s", code, out)
	}
}

func TestTokenRotate(t *testing.T) {
	fx := newFleet(t, map[string][]string{"a": nil, "b": nil, "c": nil}, "c")
	code, out, errOut := runCLI(t, "--inventory", fx.inv, "token", "rotate")
	if code != exitFailed || !strings.Contains(errOut, "1 of 3 boxes failed") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	inv, err := LoadInventory(fx.inv)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range inv.Boxes {
		if b.Name == "c" {
			if b.Token != "moh_tok_c" || !strings.Contains(line(t, out, "c"), "FAILED") {
				t.Errorf("down box c lost its token: %+v", b)
			}
			continue
		}
		fb := fx.boxes[b.Name]
		if b.Token == "moh_tok_"+b.Name || b.TokenID == "" {
			t.Errorf("%s: token not rotated in inventory: %+v", b.Name, b)
		}
		if _, ok := fb.tokens["moh_tok_"+b.Name]; ok {
			t.Errorf("%s: old token still valid on the box", b.Name)
		}
		if fb.tokens[b.Token] != b.TokenID {
			t.Errorf("%s: inventory token not valid on the box", b.Name)
		}
		if !strings.Contains(line(t, out, b.Name), "old tok0 revoked") {
			t.Errorf("%s line: %q", b.Name, line(t, out, b.Name))
		}
	}
	if st, _ := os.Stat(fx.inv); st.Mode().Perm() != 0o600 {
		t.Errorf("inventory mode %v", st.Mode())
	}
	// A second rotation uses the saved token_id.
	if code, out, _ = runCLI(t, "--inventory", fx.inv, "token", "rotate", "--group", "a"); code != exitOK {
		t.Fatalf("second rotate: %d %s", code, out)
	}
	if n := len(fx.boxes["a"].tokens); n != 1 {
		t.Errorf("box a has %d tokens after two rotations", n)
	}
}

func TestInventoryValidation(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown field": `{"boxes":[{"name":"a","url":"http://x","group":["g"]}]}`,
		"dup name":      `{"boxes":[{"name":"a","url":"http://x"},{"name":"a","url":"http://y"}]}`,
		"bad url":       `{"boxes":[{"name":"a","url":"ftp://x"}]}`,
		"bad group":     `{"boxes":[{"name":"a","url":"http://x","groups":["a/b"]}]}`,
		"not json":      `boxes: [a]`,
	}
	for name, body := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadInventory(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

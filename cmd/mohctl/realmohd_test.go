package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
)

// realVersion is the version the real mohd is built with, so a test can
// tell the box's own answer from a default.
const realVersion = "9.8.7-test"

// realBox is a real mohd on loopback.
type realBox = testkit.Mohd

// startMohd starts a real mohd on a free loopback port with an admin
// token (testkit.StartMohd); extra are more `mohd run` flags. A box that
// does not come up ends the test.
func startMohd(t *testing.T, bin, name string, extra ...string) *realBox {
	t.Helper()
	b := testkit.StartMohd(t, bin, name, extra...)
	if t.Failed() {
		t.FailNow()
	}
	return b
}

// TestAgainstRealMohd drives real mohd processes on loopback, one of them
// down, through the commands an operator uses.
func TestAgainstRealMohd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd")
	}
	bin := testkit.MustBuildMohd(t, realVersion)
	mp3 := filepath.Join(t.TempDir(), "chime.mp3")
	if out, err := exec.Command("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
		"-ac", "2", "-ar", "44100", "-b:a", "128k", mp3).CombinedOutput(); err != nil {
		t.Fatalf("make test mp3: %v %s", err, out)
	}

	var inv Inventory
	boxes := map[string]*realBox{}
	for _, n := range []string{"east", "west"} {
		b := startMohd(t, bin, n)
		boxes[n] = b
		inv.Boxes = append(inv.Boxes, Box{Name: n, URL: b.URL(), Token: b.Token, TokenID: b.TokenID, Groups: []string{"all"}})
	}
	// Until the watchdog has seen audio flow, a box's health is critical
	// ("starting"): wait for that, as an operator would after a boot.
	for _, b := range boxes {
		waitHealthy(t, b)
	}
	inv.Boxes = append(inv.Boxes, Box{Name: "north", URL: "http://" + testkit.FreeAddr(t), Token: "moh_x", Groups: []string{"all"}})
	invPath := filepath.Join(t.TempDir(), "inventory.json")
	raw, _ := json.Marshal(inv)
	os.WriteFile(invPath, raw, 0o600)
	run := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"--inventory", invPath, "--timeout", "20s"}, args...)...)
	}

	code, out, errOut := run("status")
	if code != player.HealthCritical.Code() || !strings.Contains(errOut, "1 of 3 boxes failed") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	if l := line(t, out, "north"); !strings.Contains(l, "DOWN") || !strings.Contains(l, "connection refused") {
		t.Errorf("north: %q", l)
	}
	for _, n := range []string{"east", "west"} {
		if l := line(t, out, n); strings.Contains(l, "DOWN") || !strings.Contains(l, "now") {
			t.Errorf("%s: %q", n, l)
		}
	}
	t.Logf("\n%s", out)

	if code, out, _ = run("volume", "35", "--group", "east"); code != exitOK || !strings.Contains(out, "volume 35") {
		t.Errorf("volume: %d %s", code, out)
	}
	if code, out, _ = run("push", mp3, "--group", "west"); code != exitOK || !strings.Contains(out, "added chime.mp3") {
		t.Fatalf("push: %d %s", code, out)
	}
	if code, out, _ = run("playlist", "--group", "west"); code != exitOK || !strings.Contains(out, "chime") {
		t.Errorf("playlist: %d %s", code, out)
	}
	if code, out, _ = run("remove", "chime.mp3", "--group", "west"); code != exitOK {
		t.Errorf("remove: %d %s", code, out)
	}
	if code, out, _ = run("token", "rotate", "--group", "east"); code != exitOK || !strings.Contains(out, "revoked") {
		t.Errorf("rotate: %d %s", code, out)
	}
	// The old token is dead, the saved one works.
	req, _ := http.NewRequest("GET", boxes["east"].URL()+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+boxes["east"].Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("old token after rotation: %v %v", resp.StatusCode, err)
	}
	if code, out, _ = run("status", "--group", "east", "-o", "json"); code != exitOK || !strings.Contains(out, `"volume": 35`) {
		t.Errorf("status after rotation: %d %s", code, out)
	}
}

// waitHealthy waits until b's /healthz says 200.
func waitHealthy(t *testing.T, b *realBox) {
	t.Helper()
	testkit.WaitHealthy(t, b.URL())
}

// TestSameStatusOverBothTransports: a real mohd linked to a real
// mosquitto tells mohctl the same status document over its HTTP API and
// through the broker, so the DISK and VERSION columns are filled either
// way (the broker once carried the player's status only).
func TestSameStatusOverBothTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd and mosquitto")
	}
	bin := testkit.MustBuildMohd(t, realVersion)
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	broker := fleettest.MustBroker(t, dir, ca, fleettest.ACL(map[string][]string{"box1": {"g"}}))
	cert, key := ca.MustIssue(t, "box1", false)
	b := startMohd(t, bin, "box1", "--mqtt-broker", broker.URL(), "--mqtt-ca", ca.CAFile,
		"--mqtt-cert", cert, "--mqtt-key", key, "--device-id", "box1", "--groups", "g")
	waitHealthy(t, b)
	opCert, opKey := ca.MustIssue(t, "operator", false)
	inv := Inventory{Boxes: []Box{{Name: "box1", URL: b.URL(), Token: b.Token, TokenID: b.TokenID, Groups: []string{"g"}}}}
	invPath := filepath.Join(t.TempDir(), "inventory.json")
	raw, _ := json.Marshal(inv)
	if err := os.WriteFile(invPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	via := []string{"--inventory", invPath, "--via", broker.URL(), "--ca", ca.CAFile, "--cert", opCert, "--key", opKey, "--timeout", "3s"}
	rowOf := func(args ...string) (row, map[string]json.RawMessage) {
		t.Helper()
		code, out, errOut := runCLI(t, append(args, "status", "-o", "json")...)
		var rows []row
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
			t.Fatalf("%v status: exit %d, %v\n%s%s", args, code, err, out, errOut)
		}
		var doc map[string]json.RawMessage
		json.Unmarshal(rows[0].Status, &doc)
		return rows[0], doc
	}
	httpRow, httpDoc := rowOf("--inventory", invPath, "--timeout", "10s")
	// The retained status follows the box within a second of a change;
	// right after start it may still say "starting".
	var mqttRow row
	var mqttDoc map[string]json.RawMessage
	deadline := time.Now().Add(15 * time.Second)
	for {
		mqttRow, mqttDoc = rowOf(via...)
		if mqttRow.Health == string(player.HealthOK) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, r := range map[string]row{"http": httpRow, "mqtt": mqttRow} {
		if !r.OK || r.Health != string(player.HealthOK) || r.Version != realVersion ||
			r.DiskFree == nil || r.DiskTotal == nil || *r.DiskTotal == 0 || r.UptimeS <= 0 {
			r.Status = nil // printed as bytes otherwise
			t.Errorf("%s row lacks what the box knows: %+v", name, r)
		}
	}
	for k := range httpDoc {
		if _, ok := mqttDoc[k]; !ok {
			t.Errorf("field %q is in the HTTP status but not in the MQTT one", k)
		}
	}
	for k := range mqttDoc {
		if _, ok := httpDoc[k]; !ok {
			t.Errorf("field %q is in the MQTT status but not in the HTTP one", k)
		}
	}
	_, out, _ := runCLI(t, append(via, "status")...)
	if l := line(t, out, "box1"); !strings.Contains(l, " free (") || !strings.Contains(l, realVersion) {
		t.Errorf("table over the broker lacks DISK or VERSION: %q", l)
	}
}

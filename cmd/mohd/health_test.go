package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/testkit"
)

// signals is what every monitoring surface of one box says at one moment.
type signals struct {
	healthzCode  int
	healthzState string
	statusState  string
	metricsState int
	checkExit    int
	mohctlExit   int
	reason       string
}

func (s signals) String() string {
	return fmt.Sprintf("/healthz %d %s, status %s, moh_health_state %d, mohd check %d, mohctl status %d (%s)",
		s.healthzCode, s.healthzState, s.statusState, s.metricsState, s.checkExit, s.mohctlExit, s.reason)
}

var healthGauge = regexp.MustCompile(`(?m)^moh_health_state (\d)$`)

// readSignals asks each surface in turn: the HTTP health check, the status
// document, /metrics, `mohd check` and `mohctl status`.
func readSignals(t *testing.T, c *apiClient, data, mohctl, inventory string) signals {
	t.Helper()
	var s signals
	resp, err := c.hc.Get(c.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ State, Reason string }
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	s.healthzCode, s.healthzState, s.reason = resp.StatusCode, h.State, h.Reason

	var st struct {
		Health struct{ State string } `json:"health"`
	}
	if _, err := c.do("GET", "/api/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	s.statusState = st.Health.State

	resp, err = c.hc.Get(c.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.metricsState = -1
	if m := healthGauge.FindSubmatch(body); m != nil {
		s.metricsState, _ = strconv.Atoi(string(m[1]))
	}

	cmd := exec.Command(mohdBin, "check", "--data", data, "--url", c.base)
	cmd.Run()
	s.checkExit = cmd.ProcessState.ExitCode()
	cmd = exec.Command(mohctl, "--inventory", inventory, "status")
	cmd.Run()
	s.mohctlExit = cmd.ProcessState.ExitCode()
	return s
}

// TestOneHealthTruth drives real mohd daemons through the situations of
// the health model and checks that every signal gives the same answer:
// ok while audio flows; warning (still 200) when the admin stopped it or
// set volume 0; critical (503) when playback is wanted and the output
// fails.
func TestOneHealthTruth(t *testing.T) {
	bin := t.TempDir()
	mohctl := filepath.Join(bin, "mohctl")
	if out, err := exec.Command("go", "build", "-o", mohctl, "../mohctl").CombinedOutput(); err != nil {
		t.Fatalf("build mohctl: %v\n%s", err, out)
	}
	start := func(t *testing.T, output string) (*apiClient, string, string, *mohdProc) {
		data := t.TempDir()
		tok := createToken(t, data, "admin")
		addr := testkit.FreeAddr(t)
		d := startDaemon(t, data, addr, "--output", output)
		c := &apiClient{base: "http://" + addr, token: tok, hc: &http.Client{Timeout: 5 * time.Second}}
		inv := filepath.Join(t.TempDir(), "inventory.json")
		raw, _ := json.Marshal(map[string]any{"boxes": []map[string]string{{"name": "box", "url": c.base, "token": c.token}}})
		if err := os.WriteFile(inv, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return c, data, inv, d
	}
	// settle polls until the health verdict is want (the watchdog needs
	// a few seconds to call a fault), then reads every signal.
	settle := func(t *testing.T, c *apiClient, data, inv, want string, d *mohdProc) signals {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st struct {
				Health struct{ State string } `json:"health"`
			}
			c.do("GET", "/api/v1/status", nil, &st)
			if st.Health.State == want {
				time.Sleep(100 * time.Millisecond) // past the status cache
				return readSignals(t, c, data, mohctl, inv)
			}
			if time.Now().After(deadline) {
				t.Fatalf("health never became %s (last %q):\n%s", want, st.Health.State, d.Log)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	expect := func(t *testing.T, what string, s signals, code int, state string, reason string) {
		t.Helper()
		want := map[string]int{"ok": 0, "warning": 1, "critical": 2}[state]
		if s.healthzCode != code || s.healthzState != state || s.statusState != state ||
			s.metricsState != want || s.checkExit != want || s.mohctlExit != want || !strings.Contains(s.reason, reason) {
			t.Errorf("%s: %v; want every signal to say %s (%d), reason ~%q", what, s, state, want, reason)
		} else {
			t.Logf("%s: %v", what, s)
		}
	}

	c, data, inv, d := start(t, "null")
	expect(t, "playing", settle(t, c, data, inv, "ok", d), 200, "ok", "audio flowing")
	c.do("POST", "/api/v1/player/stop", nil, nil)
	expect(t, "admin stop", settle(t, c, data, inv, "warning", d), 200, "warning", "stopped by the admin")
	c.do("POST", "/api/v1/player/play", nil, nil)
	settle(t, c, data, inv, "ok", d)
	c.do("PUT", "/api/v1/volume", map[string]int{"volume": 0}, nil)
	expect(t, "volume 0", settle(t, c, data, inv, "warning", d), 200, "warning", "volume is 0")

	// No such sound card: aplay cannot open it, callers hear nothing.
	c, data, inv, d = start(t, "alsa:moh_no_such_card")
	expect(t, "output failing", settle(t, c, data, inv, "critical", d), 503, "critical", "no audio")
}

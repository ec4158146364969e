package webui

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/player"
)

// TestHealthModel drives one player through each situation and checks that
// /healthz and the status document give the one verdict of the health
// model, and that /healthz tells an outsider nothing else (no track name).
func TestHealthModel(t *testing.T) {
	be := &stubBackend{state: player.StateStopped}
	degraded := []string(nil)
	p := player.New(player.Options{Backend: be, Logger: testLogger(t), Settings: player.DefaultSettings,
		Degraded: func() []string { return degraded }})
	runPlayer(t, p)
	s, err := New(Options{Player: p, DataDir: t.TempDir(), Logger: testLogger(t), Version: "test-1"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	tok, _, err := CreateToken(s.opt.DataDir, "read", "")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: s.opt.DataDir, srv: s, ts: ts, player: p}

	for _, tc := range []struct {
		name   string
		set    func()
		code   int
		state  player.HealthState
		silent bool
		reason string
	}{
		{"playing", func() {}, 200, player.HealthOK, false, "audio flowing"},
		{"admin stop", func() { p.Stop() }, 200, player.HealthWarning, true, "stopped by the admin"},
		{"volume 0", func() { p.Play(); p.SetVolume(0) }, 200, player.HealthWarning, true, "volume is 0"},
		{"disk low", func() { p.SetVolume(60); degraded = []string{"disk nearly full: 9.0 MiB free"} }, 200, player.HealthWarning, false, "disk nearly full"},
		{"fault", func() { degraded = nil; be.setFault("device-missing: no sound card") }, 503, player.HealthCritical, true, "device-missing: no sound card"},
		{"back", func() { be.setFault("") }, 200, player.HealthOK, false, "audio flowing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.set()
			time.Sleep(2 * statusMaxAge) // past the status cache
			resp, body := e.do(nil, "GET", "/healthz", nil, nil)
			var h map[string]any
			if err := json.Unmarshal(body, &h); err != nil {
				t.Fatalf("healthz body %s", body)
			}
			keys := make([]string, 0, len(h))
			for k := range h {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, []string{"reason", "silent", "state"}) {
				t.Errorf("/healthz says more than the health: %s", body)
			}
			if resp.StatusCode != tc.code || h["state"] != string(tc.state) || h["silent"] != tc.silent ||
				!strings.Contains(h["reason"].(string), tc.reason) {
				t.Errorf("/healthz %d %s; want %d %s silent=%v reason ~%q", resp.StatusCode, body, tc.code, tc.state, tc.silent, tc.reason)
			}
			_, body = e.do(nil, "GET", "/api/v1/status", nil, map[string]string{"Authorization": "Bearer " + tok})
			var st struct {
				Health player.Health `json:"health"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatal(err)
			}
			if st.Health.State != tc.state || st.Health.Reason != h["reason"] || st.Health.Silent != tc.silent {
				t.Errorf("status health %+v differs from /healthz %s", st.Health, body)
			}
		})
	}
}

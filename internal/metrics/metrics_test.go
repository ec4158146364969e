package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/player/playertest"
)

// fakePlayer returns a fixed status: what is under test is the mapping to
// Prometheus series, not the player.
type fakePlayer = playertest.Fixed

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestCollectorMapsStatus(t *testing.T) {
	fault := time.Unix(1700000000, 0)
	p := &fakePlayer{Flowing: true, St: player.Status{
		BackendStatus: player.BackendStatus{State: player.StatePlaying, LevelDBFS: -18.5, Frames: 441000},
		Backend:       "direct", Wanted: player.StatePlaying, Volume: 70, PlaylistLength: 3,
		Uptime: 90 * time.Second,
		Watchdog: player.WatchdogStatus{
			FaultsByClass:    map[string]uint64{"stalled": 2, "silent": 1},
			RecoveriesByRung: map[string]uint64{"replay": 2, "restart-backend": 1},
			AttemptsByRung:   map[string]uint64{"replay": 3, "restart-backend": 1},
			LastFault:        &player.Event{Time: fault, Fault: "silent"},
			LastRecoveryMS:   1500,
		},
	}}
	connected := true
	m := New(Options{
		Player: p, Version: "1.2.3",
		Tracks:        func() int { return 5 },
		Disk:          func() (Disk, error) { return Disk{Free: 1 << 30, Total: 4 << 30}, nil },
		MQTTConnected: func() bool { return connected },
	})
	m.CountUpload("ok")
	m.CountUpload("rejected")
	m.CountUpload("ok")
	out := scrape(t, m.Handler())
	for _, want := range []string{
		`moh_build_info{version="1.2.3"} 1`,
		"moh_playing 1",
		"moh_audio_flowing 1",
		`moh_player_state{backend="direct",state="playing"} 1`,
		`moh_player_state{backend="direct",state="stopped"} 0`,
		"moh_output_level_dbfs -18.5",
		"moh_volume 70",
		"moh_playlist_tracks 3",
		"moh_library_tracks 5",
		"moh_uptime_seconds 90",
		"moh_output_frames_total 441000",
		`moh_watchdog_faults_total{fault="stalled"} 2`,
		`moh_watchdog_recoveries_total{rung="restart-backend"} 1`,
		`moh_watchdog_attempts_total{rung="replay"} 3`,
		`moh_watchdog_last_fault_timestamp_seconds{fault="silent"} 1.7e+09`,
		"moh_watchdog_last_recovery_seconds 1.5",
		"moh_disk_free_bytes 1.073741824e+09",
		"moh_disk_error 0",
		`moh_uploads_total{result="ok"} 2`,
		`moh_uploads_total{result="failed"} 0`,
		"moh_mqtt_connected 1",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" ") {
			t.Errorf("missing %q", want)
		}
	}

	// State changes are seen on the next scrape.
	p.St.State, p.Flowing, connected = player.StateRecovering, false, false
	out = scrape(t, m.Handler())
	for _, want := range []string{"moh_playing 0\n", "moh_audio_flowing 0\n", "moh_mqtt_connected 0\n", `moh_player_state{backend="direct",state="recovering"} 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("after change: missing %q", want)
		}
	}
}

func TestOptionalFamiliesAndDiskError(t *testing.T) {
	m := New(Options{Player: &fakePlayer{}, Disk: func() (Disk, error) { return Disk{}, errors.New("statfs: gone") }})
	out := scrape(t, m.Handler())
	if !strings.Contains(out, "moh_disk_error 1\n") || strings.Contains(out, "moh_disk_free_bytes") {
		t.Errorf("disk error not exported as a metric:\n%s", out)
	}
	if strings.Contains(out, "moh_mqtt_connected") || strings.Contains(out, "moh_library_tracks") {
		t.Errorf("families without a source were exported")
	}
}

func TestHTTPMiddlewareUsesRoutePatterns(t *testing.T) {
	m := New(Options{})
	r := chi.NewRouter()
	r.Use(m.HTTPMiddleware)
	r.Delete("/api/v1/tracks/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, p := range []struct{ method, path string }{
		{"DELETE", "/api/v1/tracks/abc"}, {"DELETE", "/api/v1/tracks/def"},
		{"GET", "/healthz"}, {"GET", "/no/such/path/123"}, {"BREW", "/healthz"},
	} {
		req, _ := http.NewRequest(p.method, srv.URL+p.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	out := scrape(t, m.Handler())
	for _, want := range []string{
		`moh_http_requests_total{code="204",method="DELETE",route="/api/v1/tracks/{id}"} 2`,
		`moh_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`moh_http_requests_total{code="404",method="GET",route="other"} 1`,
		`method="other"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, grep(out, "moh_http_requests_total"))
		}
	}
	if strings.Contains(out, "/no/such/path") || strings.Contains(out, "abc") {
		t.Error("raw paths leaked into labels")
	}
}

func grep(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestHealthStateAndCountersFromTheStart(t *testing.T) {
	for _, tc := range []struct {
		h      player.Health
		state  string
		silent string
	}{
		{player.Health{State: player.HealthOK}, "moh_health_state 0\n", "moh_callers_hear_silence 0\n"},
		{player.Health{State: player.HealthWarning, Silent: true}, "moh_health_state 1\n", "moh_callers_hear_silence 1\n"},
		{player.Health{State: player.HealthCritical, Silent: true}, "moh_health_state 2\n", "moh_callers_hear_silence 1\n"},
	} {
		m := New(Options{Player: &fakePlayer{St: player.Status{Health: tc.h}}})
		out := scrape(t, m.Handler())
		if !strings.Contains(out, tc.state) || !strings.Contains(out, tc.silent) {
			t.Errorf("health %s: want %q and %q in:\n%s", tc.h.State, tc.state, tc.silent, out)
		}
		// A box that never had a fault still exports every counter at 0.
		for _, want := range []string{
			`moh_watchdog_faults_total{fault="stalled"} 0`,
			`moh_watchdog_faults_total{fault="mpd-exited"} 0`,
			`moh_watchdog_recoveries_total{rung="replay"} 0`,
			`moh_watchdog_attempts_total{rung="restart-backend"} 0`,
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("missing %q before any fault", want)
			}
		}
	}
}

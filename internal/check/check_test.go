package check

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/metrics"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/player/playertest"
)

// fakePlayer is the player behind a box: a status the test sets.
type fakePlayer = playertest.Fixed

// box serves /healthz shaped like mohd's and the real /metrics handler
// over a fake player, so the check parses what mohd actually exports.
type box struct {
	p          *fakePlayer
	free       uint64
	mqtt       bool
	healthCode int // 0: derived from the health model
	now        time.Time
	noMetrics  bool
	// recentFault is the check's --recent-fault (0: its default).
	recentFault time.Duration
}

func (b *box) handler() http.Handler {
	m := metrics.New(metrics.Options{
		Player: b.p, Version: "test",
		Disk:          func() (metrics.Disk, error) { return metrics.Disk{Free: b.free, Total: 1000 << 20}, nil },
		MQTTConnected: func() bool { return b.mqtt },
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		code := b.healthCode
		if code == 0 {
			code = http.StatusOK
			if b.health().State == player.HealthCritical {
				code = http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code == http.StatusInternalServerError {
			w.Write([]byte("oops"))
			return
		}
		json.NewEncoder(w).Encode(b.health())
	})
	if !b.noMetrics {
		mux.Handle("/metrics", m.Handler())
	}
	return mux
}

// health is what mohd's /healthz serves: the player's one health model
// over the fake status, with the fleet link as a degraded part.
func (b *box) health() player.Health {
	var degraded []string
	if !b.mqtt {
		degraded = append(degraded, "fleet link down")
	}
	return player.AssessHealth(b.p.Status(), b.p.Flowing, degraded, b.now)
}

func TestCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	playing := func() *fakePlayer {
		return &fakePlayer{Flowing: true, St: player.Status{
			BackendStatus: player.BackendStatus{State: player.StatePlaying, LevelDBFS: -20},
			Backend:       "direct", Wanted: player.StatePlaying, Volume: 80, Uptime: time.Hour,
			Watchdog: player.WatchdogStatus{RecoveriesByRung: map[string]uint64{"replay": 2}, FaultsByClass: map[string]uint64{"stalled": 2}},
		}}
	}
	cases := []struct {
		name  string
		setup func(b *box)
		code  int
		want  []string
	}{
		{"healthy", func(b *box) {}, OK, []string{`MOH OK - audio flowing |`, "disk_free=50.0%;15:;5:;0;100", "level=-20.0dB", "recoveries=2c", "uptime=3600s"}},
		{"disk nearly full", func(b *box) { b.free = 100 << 20 }, Warning, []string{"MOH WARNING", "disk nearly full: 10.0% free (100.0 MiB)"}},
		{"disk full", func(b *box) { b.free = 20 << 20 }, Critical, []string{"MOH CRITICAL", "disk 2.0% free"}},
		{"recent fault", func(b *box) {
			b.p.St.Watchdog.LastFault = &player.Event{Time: now.Add(-5 * time.Minute), Fault: "stalled"}
		}, Warning, []string{`recovered from stalled 5m0s ago`}},
		{"fault older than the box's window, within --recent-fault", func(b *box) {
			b.p.St.Watchdog.LastFault = &player.Event{Time: now.Add(-20 * time.Minute), Fault: "stalled"}
			b.recentFault = 30 * time.Minute
		}, Warning, []string{`watchdog recovered from "stalled" 20m0s ago`}},
		{"volume 0", func(b *box) { b.p.St.Volume = 0 }, Warning, []string{"callers hear silence: the volume is 0"}},
		{"old fault", func(b *box) {
			b.p.St.Watchdog.LastFault = &player.Event{Time: now.Add(-time.Hour), Fault: "stalled"}
		}, OK, nil},
		{"silent", func(b *box) {
			b.p.Flowing = false
			b.p.St.State, b.p.St.Fault = player.StateRecovering, player.ParseFault("stalled: no frames for 2s")
		}, Critical, []string{"no audio: stalled: no frames for 2s"}},
		{"silent and disk low", func(b *box) { b.p.Flowing = false; b.free = 100 << 20 }, Critical, []string{"no audio", "disk nearly full"}},
		{"stopped by admin", func(b *box) {
			b.p.Flowing = false
			b.p.St.State, b.p.St.Wanted = player.StateStopped, player.StateStopped
		}, Warning, []string{"callers hear silence: stopped by the admin"}},
		{"mqtt down", func(b *box) { b.mqtt = false }, Warning, []string{"fleet link down"}},
		{"bad healthz", func(b *box) { b.healthCode = http.StatusInternalServerError }, Unknown, []string{"MOH UNKNOWN - unexpected /healthz answer: HTTP 500"}},
		{"no metrics", func(b *box) { b.noMetrics = true }, Unknown, []string{"cannot read /metrics: HTTP 404"}},
		{"no metrics but silent", func(b *box) { b.noMetrics = true; b.p.Flowing = false }, Critical, []string{"no audio"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &box{p: playing(), free: 500 << 20, mqtt: true, now: now}
			c.setup(b)
			srv := httptest.NewServer(b.handler())
			defer srv.Close()
			var out bytes.Buffer
			code := Run(context.Background(), Options{URL: srv.URL, RecentFault: b.recentFault, Now: func() time.Time { return now }}, &out)
			line := out.String()
			if code != c.code {
				t.Errorf("exit %d, want %d: %s", code, c.code, line)
			}
			if strings.Count(line, "\n") != 1 || strings.Count(line, "|") > 1 {
				t.Errorf("not one line with one perfdata separator: %q", line)
			}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("output %q lacks %q", line, w)
				}
			}
		})
	}
}

func TestCheckMohdDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	var out bytes.Buffer
	if code := Run(context.Background(), Options{URL: url, Timeout: 2 * time.Second}, &out); code != Critical {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if !strings.HasPrefix(out.String(), "MOH CRITICAL - mohd not answering at "+url) {
		t.Fatalf("output %q", out.String())
	}
}

func TestCheckTimesOut(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	start := time.Now()
	var out bytes.Buffer
	code := Run(context.Background(), Options{URL: srv.URL, Timeout: 300 * time.Millisecond}, &out)
	if code != Critical || time.Since(start) > 5*time.Second {
		t.Fatalf("exit %d after %v: %s", code, time.Since(start), out.String())
	}
}

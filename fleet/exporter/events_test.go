package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
)

// TestEventsCounted: a real agent publishes its events through a real
// mosquitto with the documented ACL, the exporter counts them by device
// and kind — including events the box had before its link came up — and
// the output passes promtool's linter.
func TestEventsCounted(t *testing.T) {
	groups := map[string][]string{"east": {"site-east"}}
	f := newFleetEnv(t, groups)
	_, metricsURL := f.startExporter(t)

	a := f.newAgent(t, "east", groups["east"], newBoxOps())
	// Before the link is up: these wait in the agent's queue.
	a.PublishEvent(player.Event{Kind: "fault", Fault: player.FaultStalled, Message: "no progress"})
	a.PublishEvent(player.Event{Kind: "recovered", Fault: player.FaultStalled, Rung: "replay", RecoveryMS: 900})
	testkit.Go(t, a.Run)

	waitMetrics(t, metricsURL, 15*time.Second, "east up", func(fams map[string]*dtoFamily) bool {
		up, _ := value(t, fams, "moh_fleet_up", "east")
		return up == 1
	})
	for range 3 {
		a.PublishEvent(player.Event{Kind: "recovered", Fault: player.FaultStalled, Rung: "replay"})
	}
	a.PublishEvent(player.Event{Kind: "admin", Message: "stop"})
	a.PublishEvent(player.Event{Kind: "bad kind/with+wildcards"})

	want := map[string]float64{"east/fault": 1, "east/recovered": 4, "east/admin": 1, "east/other": 1}
	waitMetrics(t, metricsURL, 10*time.Second, "events counted", func(fams map[string]*dtoFamily) bool {
		for key, n := range want {
			if got, _ := value(t, fams, "moh_fleet_events_total", key); got != n {
				return false
			}
		}
		return true
	})
	text := get(t, metricsURL)
	promtoolCheck(t, text)
	if fams := parse(t, text); fams["moh_fleet_events_total"].typ != "counter" {
		t.Errorf("moh_fleet_events_total is a %s", fams["moh_fleet_events_total"].typ)
	}
	if n := a.EventsDropped(); n != 0 {
		t.Errorf("agent dropped %d events", n)
	}
}

// TestEventKindsBounded: a box sending ever new kinds costs at most
// maxKinds series.
func TestEventKindsBounded(t *testing.T) {
	e, err := New(Options{BrokerURL: "mqtts://127.0.0.1:1", TLSConfig: nil, CAFile: "", Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		e.CountEvent("box", "k"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	if n := len(e.events["box"]); n > maxKinds+1 {
		t.Fatalf("%d kinds kept, want at most %d", n, maxKinds+1)
	}
	if e.events["box"]["other"] == 0 {
		t.Fatal("no kind counted as other")
	}
}

// TestDiskTrendAndUnderrunsFromStatus: the box's disk trend and underrun
// count in its status become the fleet's metrics.
func TestDiskTrendAndUnderrunsFromStatus(t *testing.T) {
	e, err := New(Options{BrokerURL: "mqtts://127.0.0.1:1", Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"state":"playing","version":"3.1","system":{"disk_free_trend_bytes_per_hour":-1048576,"alsa_underruns":4}}`
	e.Observe("box", fleet.StatusDoc{Device: "box", Presence: fleet.Online, Time: time.Now(), Status: []byte(raw)}, false)
	var b strings.Builder
	if err := e.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, b.String())
	wantSeries(t, fams, []series{
		{"moh_fleet_disk_free_trend_bytes_per_hour", "box", -1048576},
		{"moh_fleet_alsa_underruns_total", "box", 4},
	})
	promtoolCheck(t, b.String())
}

package exporter

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/player/playertest"
	"github.com/mohproject/moh/uploads"
)

// fakeClock is the exporter's clock in the tests that judge staleness.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestExporter(t *testing.T, clock *fakeClock) *Exporter {
	t.Helper()
	e, err := New(Options{BrokerURL: "mqtts://127.0.0.1:1", Logger: slog.New(slog.DiscardHandler), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// boxDoc is the envelope a box publishes with its status document.
func boxDoc(t *testing.T, dev string, groups []string, at time.Time, health player.HealthState, silent bool, extra map[string]any) fleet.StatusDoc {
	t.Helper()
	st := player.Status{Wanted: player.StatePlaying, Volume: 70, PlaylistLength: 3, Uptime: 90 * time.Second}
	st.State = player.StatePlaying
	st.Health = player.Health{State: health, Reason: "test", Silent: silent}
	st.Watchdog.Faults, st.Watchdog.Recoveries = 4, 3
	st.Watchdog.LastFault = &player.Event{Time: at.Add(-time.Minute), Kind: "fault", Fault: "stalled", Message: "stalled"}
	doc := status.Build(&playertest.Fixed{St: st, Flowing: !silent}, &uploads.DiskStatus{FreeBytes: 5 << 30, TotalBytes: 8 << 30}, "2.1.0")
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		var m map[string]any
		json.Unmarshal(raw, &m)
		for k, v := range extra {
			m[k] = v
		}
		raw, _ = json.Marshal(m)
	}
	return fleet.StatusDoc{Device: dev, Presence: fleet.Online, Groups: groups, Time: at, Status: raw}
}

func scrape(t *testing.T, e *Exporter) (string, map[string]*dtoFamily) {
	t.Helper()
	var b bytes.Buffer
	if err := e.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nprocess_resident_memory_bytes ") || !strings.Contains(b.String(), "\ngo_goroutines ") {
		t.Errorf("the exporter's own process metrics are missing")
	}
	return b.String(), parse(t, b.String())
}

type dtoFamily = struct {
	typ     string
	samples map[string]float64 // by device (or "" for unlabelled), plus extra label values joined with /
}

// parse reads the text format with Prometheus's own parser, so a syntax
// slip fails here, and indexes the samples by device.
func parse(t *testing.T, text string) map[string]*dtoFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exporter output does not parse: %v\n%s", err, text)
	}
	out := map[string]*dtoFamily{}
	for name, f := range fams {
		df := &dtoFamily{typ: strings.ToLower(f.GetType().String()), samples: map[string]float64{}}
		for _, m := range f.Metric {
			key := ""
			var extra []string
			for _, l := range m.Label {
				switch l.GetName() {
				case "device":
					key = l.GetValue()
				case "site", "version":
				default:
					extra = append(extra, l.GetValue())
				}
			}
			if len(extra) > 0 {
				key += "/" + strings.Join(extra, "/")
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			df.samples[key] = v
		}
		out[name] = df
	}
	return out
}

func value(t *testing.T, fams map[string]*dtoFamily, name, key string) (float64, bool) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	v, ok := f.samples[key]
	return v, ok
}

// series is a value a test expects in a scrape: its family, the key
// value finds it by, and the value.
type series struct {
	name, key string
	want      float64
}

// wantSeries checks each of want against fams.
func wantSeries(t *testing.T, fams map[string]*dtoFamily, want []series) {
	t.Helper()
	for _, c := range want {
		if got, ok := value(t, fams, c.name, c.key); !ok || got != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.name, c.key, got, ok, c.want)
		}
	}
}

// promtoolCheck runs `promtool check metrics` on text: Prometheus's own
// linter of an exporter's output (names, help, types, units).
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (make deps, or apt-get install prometheus): %v", err)
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestMetricsFromStatus(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := newTestExporter(t, clock)
	now := clock.t
	notAfter := now.Add(20 * 24 * time.Hour)
	e.Observe("east", boxDoc(t, "east", []string{"paris", "all"}, now, player.HealthOK, false, map[string]any{
		"system": map[string]any{"clock_synced": false, "data_written_bytes": 123456,
			"disk_free_trend_bytes_per_hour": -2048, "alsa_underruns": 2,
			"certs": []map[string]any{{"name": "fleet", "not_after": notAfter}, {"name": "https", "not_after": notAfter.Add(time.Hour)}}},
	}), false)
	e.Observe("west", boxDoc(t, "west", []string{"lyon"}, now, player.HealthCritical, true, nil), false)
	// A version string from a box is data, not syntax.
	odd := boxDoc(t, "odd", nil, now, player.HealthWarning, true, map[string]any{"version": "1\"2\\3\nx"})
	e.Observe("odd", odd, false)
	e.CountEvent("east", "recovered")

	text, fams := scrape(t, e)
	promtoolCheck(t, text)
	wantSeries(t, fams, []series{
		{"moh_fleet_up", "east", 1},
		{"moh_fleet_up", "west", 1},
		{"moh_fleet_health_state", "east", 0},
		{"moh_fleet_health_state", "west", 2},
		{"moh_fleet_health_state", "odd", 1},
		{"moh_fleet_callers_hear_silence", "west", 1},
		{"moh_fleet_audio_flowing", "west", 0},
		{"moh_fleet_playing", "east", 1},
		{"moh_fleet_volume", "east", 70},
		{"moh_fleet_uptime_seconds", "east", 90},
		{"moh_fleet_watchdog_recoveries_total", "east", 3},
		{"moh_fleet_watchdog_faults_total", "east", 4},
		{"moh_fleet_watchdog_last_fault_timestamp_seconds", "east/stalled", float64(now.Add(-time.Minute).Unix())},
		{"moh_fleet_disk_free_bytes", "east", 5 << 30},
		{"moh_fleet_disk_warning", "east", 0},
		{"moh_fleet_clock_synced", "east", 0},
		{"moh_fleet_data_written_bytes_total", "east", 123456},
		{"moh_fleet_disk_free_trend_bytes_per_hour", "east", -2048},
		{"moh_fleet_alsa_underruns_total", "east", 2},
		{"moh_fleet_events_total", "east/recovered", 1},
		{"moh_fleet_cert_expiry_timestamp_seconds", "east/fleet", float64(notAfter.Unix())},
		{"moh_fleet_box_group", "east/all", 1},
		{"moh_fleet_last_seen_timestamp_seconds", "east", float64(now.Unix())},
		{"moh_fleet_exporter_boxes", "", 3},
		{"moh_fleet_exporter_broker_connected", "", 0},
	})
	if _, ok := value(t, fams, "moh_fleet_clock_synced", "west"); ok {
		t.Error("west does not report its clock, yet has moh_fleet_clock_synced")
	}
	if !strings.Contains(text, `device="east",site="paris",version="2.1.0"`) {
		t.Errorf("east's labels: %s", text)
	}
	if !strings.Contains(text, `version="1\"2\\3\nx"`) {
		t.Errorf("odd version not escaped")
	}
	// Every name served is one MetricNames lists (the dashboard test
	// trusts that list), and this full box shows all of them.
	names := MetricNames()
	for n := range fams {
		if strings.HasPrefix(n, "moh_") && !slices.Contains(names, n) {
			t.Errorf("served %s, missing from MetricNames", n)
		}
	}
	for _, n := range names {
		if _, ok := fams[n]; !ok {
			t.Errorf("MetricNames lists %s, never served", n)
		}
	}
}

// TestOfflineAndStale: a box's last will makes it down at once and drops
// its status series (a dead box's last health must not keep an alert
// firing), keeping its labels; a box unheard past the staleness window is
// down too; a retained document counts from its own time.
func TestOfflineAndStale(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := newTestExporter(t, clock)
	t0 := clock.t
	e.Observe("east", boxDoc(t, "east", []string{"paris"}, t0, player.HealthCritical, true, nil), false)
	e.Observe("west", boxDoc(t, "west", []string{"lyon"}, t0, player.HealthOK, false, nil), false)
	// north's retained status is ten minutes old when the exporter starts.
	e.Observe("north", boxDoc(t, "north", nil, t0.Add(-10*time.Minute), player.HealthOK, false, nil), true)

	clock.t = t0.Add(2 * time.Minute)
	e.Observe("east", fleet.StatusDoc{Device: "east", Presence: fleet.Offline, Groups: []string{"paris"}, Time: t0.Add(-time.Hour)}, false)
	text, fams := scrape(t, e)
	promtoolCheck(t, text)
	for dev, want := range map[string]float64{"east": 0, "west": 1, "north": 0} {
		if got, _ := value(t, fams, "moh_fleet_up", dev); got != want {
			t.Errorf("up{%s} = %v, want %v", dev, got, want)
		}
	}
	if _, ok := value(t, fams, "moh_fleet_health_state", "east"); ok {
		t.Error("an offline box still shows its last health")
	}
	if !strings.Contains(text, `moh_fleet_up{device="east",site="paris",version="2.1.0"} 0`) {
		t.Errorf("east lost its version label when it went offline:\n%s", text)
	}
	if got, _ := value(t, fams, "moh_fleet_last_seen_timestamp_seconds", "east"); got != float64(t0.Add(-time.Hour).Unix()) {
		t.Errorf("east last seen %v", got)
	}

	clock.t = t0.Add(4 * time.Minute)
	_, fams = scrape(t, e)
	if got, _ := value(t, fams, "moh_fleet_up", "west"); got != 0 {
		t.Errorf("west unheard for 4 minutes is still up")
	}
	// An empty retained message (the operator cleared the topic) forgets
	// the box.
	e.onMessage(nil, message{topic: "moh/west/status"})
	if e.Boxes() != 2 {
		t.Errorf("after clearing west: %d boxes", e.Boxes())
	}
	for _, bad := range []message{{topic: "moh/a+b/status", payload: []byte("{}")}, {topic: "moh/x/status", payload: []byte("not json")}} {
		e.onMessage(nil, bad)
	}
	if e.Boxes() != 2 || e.bad.Load() != 2 {
		t.Errorf("bad messages: %d boxes, %d counted bad", e.Boxes(), e.bad.Load())
	}
}

// message is an MQTT message as paho hands it to the handler.
type message struct {
	topic    string
	payload  []byte
	retained bool
}

func (m message) Duplicate() bool   { return false }
func (m message) Qos() byte         { return 1 }
func (m message) Retained() bool    { return m.retained }
func (m message) Topic() string     { return m.topic }
func (m message) MessageID() uint16 { return 0 }
func (m message) Payload() []byte   { return m.payload }
func (m message) Ack()              {}

func TestHandler(t *testing.T) {
	e := newTestExporter(t, &fakeClock{t: time.Now()})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") || !strings.Contains(string(body), "moh_fleet_exporter_boxes 0") {
		t.Errorf("/metrics: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/nope", 404}, {"POST", "/metrics", 405}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.code || err != nil || body.Error.Code == "" || body.Error.Message == "" {
			t.Errorf("%s %s: %d %+v %v", c.method, c.path, resp.StatusCode, body, err)
		}
	}
}

func TestNewRefusesPlainMQTT(t *testing.T) {
	for _, u := range []string{"mqtt://broker:1883", "tcp://broker:1883", "mqtts://", "::"} {
		if _, err := New(Options{BrokerURL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// TestRetainedReplay: when the exporter resubscribes, the broker's
// retained document wins over what the exporter had — a box that died
// while the exporter was away shows down at once, though its last will
// is older than its last status — unless a live message of the same
// subscription overtook the replay.
func TestRetainedReplay(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := newTestExporter(t, clock)
	t0 := clock.t
	e.subscribed.Store(t0.Add(-time.Hour).UnixNano())
	e.Observe("east", boxDoc(t, "east", nil, t0, player.HealthOK, false, nil), false)
	e.Observe("west", boxDoc(t, "west", nil, t0, player.HealthOK, false, nil), false)

	// The exporter reconnects a minute later; east died meanwhile.
	clock.t = t0.Add(time.Minute)
	e.subscribed.Store(clock.t.UnixNano())
	e.Observe("east", fleet.StatusDoc{Device: "east", Presence: fleet.Offline, Time: t0.Add(-2 * time.Hour)}, true)
	// west's live news of this subscription comes before its replay.
	clock.t = t0.Add(61 * time.Second)
	e.Observe("west", boxDoc(t, "west", nil, clock.t, player.HealthCritical, true, nil), false)
	e.Observe("west", boxDoc(t, "west", nil, t0, player.HealthOK, false, nil), true)

	_, fams := scrape(t, e)
	if up, _ := value(t, fams, "moh_fleet_up", "east"); up != 0 {
		t.Errorf("east died while the exporter was away, still up")
	}
	if h, _ := value(t, fams, "moh_fleet_health_state", "west"); h != 2 {
		t.Errorf("west's replayed old status overwrote its live news: health %v", h)
	}
}

package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/player/playertest"
	"github.com/mohproject/moh/uploads"
)

// TestMain lets the test binary be a box of its own: with
// MOH_EXPORTER_TEST_AGENT set it runs a real fleet agent until killed, so
// the end-to-end test can kill a box as a power cut would (SIGKILL, no
// goodbye), which an agent inside the test process cannot suffer. With
// MOH_EXPORTER_TEST_SERVE it is an exporter, for the benchmark's RSS.
func TestMain(m *testing.M) {
	if dev := os.Getenv("MOH_EXPORTER_TEST_AGENT"); dev != "" {
		os.Exit(agentMain(dev))
	}
	if addr := os.Getenv("MOH_EXPORTER_TEST_SERVE"); addr != "" {
		os.Exit(serveMain(addr))
	}
	os.Exit(m.Run())
}

func agentMain(dev string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	a, err := fleet.NewAgent(fleet.AgentOptions{
		BrokerURL: os.Getenv("MOH_BROKER"), CAFile: os.Getenv("MOH_CA"),
		CertFile: os.Getenv("MOH_CERT"), KeyFile: os.Getenv("MOH_KEY"),
		DeviceID: dev, Groups: []string{"site-" + dev}, Ops: newBoxOps(),
		ChangeInterval: 100 * time.Millisecond, MaxReconnectInterval: time.Second,
		TempDir: os.TempDir(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// boxOps is a box behind a real agent: its status is built by
// status.Build like mohd's, from a player whose audio the test can cut.
type boxOps struct {
	mu     sync.Mutex
	silent bool
}

func newBoxOps() *boxOps { return &boxOps{} }

func (o *boxOps) cut() { o.mu.Lock(); o.silent = true; o.mu.Unlock() }

func (o *boxOps) Status() status.Doc {
	o.mu.Lock()
	silent := o.silent
	o.mu.Unlock()
	st := player.Status{Wanted: player.StatePlaying, Volume: 60, PlaylistLength: 2, Uptime: time.Minute}
	st.State = player.StatePlaying
	st.Health = player.Health{State: player.HealthOK, Reason: "playing"}
	if silent {
		// What AssessHealth says of a box that wants to play and hears
		// nothing: critical, silent.
		st.Health = player.Health{State: player.HealthCritical, Reason: "no audio reaches the output", Silent: true}
	}
	return status.Build(&playertest.Fixed{St: st, Flowing: !silent}, &uploads.DiskStatus{FreeBytes: 1 << 30, TotalBytes: 4 << 30}, "3.0.0")
}
func (o *boxOps) Tracks() any         { return []string{} }
func (o *boxOps) Play() error         { return nil }
func (o *boxOps) Stop() error         { return nil }
func (o *boxOps) Next()               {}
func (o *boxOps) SetVolume(int) error { return nil }
func (o *boxOps) AddTrack(context.Context, string, io.Reader) (string, error) {
	return "", errors.New("no")
}
func (o *boxOps) RemoveTrack(string) error { return nil }
func (o *boxOps) Reorder([]string) error   { return nil }

// exporterACL is the documented ACL plus the exporter's own user, which
// may only read the status and event topics.
func exporterACL(groups map[string][]string) string {
	return fleettest.ACL(groups) + "\nuser exporter\ntopic read moh/+/status\ntopic read moh/+/events\n"
}

type fleetEnv struct {
	ca     *fleettest.CA
	broker *fleettest.Broker
}

func newFleetEnv(t testing.TB, groups map[string][]string) *fleetEnv {
	t.Helper()
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	b := fleettest.MustBroker(t, dir, ca, exporterACL(groups))
	return &fleetEnv{ca: ca, broker: b}
}

// newAgent is a real fleet agent for dev on the env's broker, not yet
// running, with short change and reconnect intervals.
func (f *fleetEnv) newAgent(t *testing.T, dev string, groups []string, ops *boxOps) *fleet.Agent {
	t.Helper()
	c, k := f.issue(t, dev)
	a, err := fleet.NewAgent(fleet.AgentOptions{
		BrokerURL: f.broker.URL(), CAFile: f.ca.CAFile, CertFile: c, KeyFile: k,
		DeviceID: dev, Groups: groups, Ops: ops, Logger: testLogger(),
		ChangeInterval: 100 * time.Millisecond, MaxReconnectInterval: time.Second, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f *fleetEnv) issue(t testing.TB, cn string) (string, string) {
	t.Helper()
	return f.ca.MustIssue(t, cn, false)
}

// startExporter runs an exporter as the "exporter" broker user and
// serves its metrics over HTTP.
func (f *fleetEnv) startExporter(t testing.TB) (*Exporter, string) {
	t.Helper()
	c, k := f.issue(t, "exporter")
	e, err := New(Options{BrokerURL: f.broker.URL(), CAFile: f.ca.CAFile, CertFile: c, KeyFile: k,
		Logger: testLogger(), MaxReconnectInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("exporter: %v", err)
		}
	})
	return e, srv.URL + "/metrics"
}

var discardLogger = slog.New(slog.DiscardHandler)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return discardLogger
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestEndToEnd: a real mosquitto with TLS and the documented ACLs, three
// real fleet agents (one in its own process), the exporter as a
// read-only broker user. One box's audio stops, another box is killed:
// the exporter's metrics must say critical and down within 10 s, and its
// output must pass promtool's linter.
func TestEndToEnd(t *testing.T) {
	groups := map[string][]string{"east": {"site-east"}, "west": {"site-west"}, "north": {"site-north"}}
	f := newFleetEnv(t, groups)
	_, metricsURL := f.startExporter(t)

	ops := map[string]*boxOps{}
	for _, dev := range []string{"east", "west"} {
		ops[dev] = newBoxOps()
		testkit.Go(t, f.newAgent(t, dev, groups[dev], ops[dev]).Run)
	}
	north := startAgentProcess(t, f, "north")

	waitMetrics(t, metricsURL, 15*time.Second, "all three boxes up and ok", func(fams map[string]*dtoFamily) bool {
		for _, dev := range []string{"east", "west", "north"} {
			if up, _ := value(t, fams, "moh_fleet_up", dev); up != 1 {
				return false
			}
			if h, ok := value(t, fams, "moh_fleet_health_state", dev); !ok || h != 0 {
				return false
			}
		}
		return true
	})

	start := time.Now()
	ops["west"].cut()
	north.Process.Kill()
	var critical, down time.Duration
	waitMetrics(t, metricsURL, 10*time.Second, "west critical and north down", func(fams map[string]*dtoFamily) bool {
		if h, _ := value(t, fams, "moh_fleet_health_state", "west"); h == 2 && critical == 0 {
			critical = time.Since(start)
		}
		if up, ok := value(t, fams, "moh_fleet_up", "north"); ok && up == 0 && down == 0 {
			down = time.Since(start)
		}
		return critical > 0 && down > 0
	})
	t.Logf("silence to metric: %v; kill to down: %v", critical.Round(time.Millisecond), down.Round(time.Millisecond))

	text := get(t, metricsURL)
	promtoolCheck(t, text)
	fams := parse(t, text)
	wantSeries(t, fams, []series{
		{"moh_fleet_up", "east", 1},
		{"moh_fleet_health_state", "east", 0},
		{"moh_fleet_callers_hear_silence", "west", 1},
		{"moh_fleet_exporter_broker_connected", "", 1},
		{"moh_fleet_exporter_boxes", "", 3},
	})
	if _, ok := value(t, fams, "moh_fleet_health_state", "north"); ok {
		t.Error("the killed box still shows a health")
	}
	if !strings.Contains(text, `moh_fleet_up{device="north",site="site-north",version="3.0.0"} 0`) {
		t.Errorf("north's down series lost its labels:\n%s", text)
	}
}

// startAgentProcess runs a real fleet agent for dev in a child process.
func startAgentProcess(t *testing.T, f *fleetEnv, dev string) *exec.Cmd {
	t.Helper()
	c, k := f.issue(t, dev)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MOH_EXPORTER_TEST_AGENT="+dev, "MOH_BROKER="+f.broker.URL(),
		"MOH_CA="+f.ca.CAFile, "MOH_CERT="+c, "MOH_KEY="+k)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("agent %s:\n%s", dev, log.String())
		}
	})
	return cmd
}

func waitMetrics(t *testing.T, url string, d time.Duration, what string, cond func(map[string]*dtoFamily) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		last = get(t, url)
		if cond(parse(t, last)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last scrape:\n%s", d, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrokerRestart: an exporter started before the broker, and one that
// loses it, comes back by itself, says it is disconnected meanwhile, and
// sees the changes made after the broker returned.
func TestBrokerRestart(t *testing.T) {
	f := newFleetEnv(t, map[string][]string{"east": {"paris"}})
	f.broker.Stop()
	e, metricsURL := f.startExporter(t)
	time.Sleep(300 * time.Millisecond)
	if err := f.broker.Start(); err != nil {
		t.Fatal(err)
	}
	ops := newBoxOps()
	testkit.Go(t, f.newAgent(t, "east", []string{"paris"}, ops).Run)
	waitMetrics(t, metricsURL, 15*time.Second, "east up after a late broker", func(fams map[string]*dtoFamily) bool {
		up, _ := value(t, fams, "moh_fleet_up", "east")
		return up == 1
	})

	f.broker.Stop()
	waitMetrics(t, metricsURL, 10*time.Second, "exporter disconnected", func(fams map[string]*dtoFamily) bool {
		v, _ := value(t, fams, "moh_fleet_exporter_broker_connected", "")
		return v == 0
	})
	if err := f.broker.Start(); err != nil { // persistence off: the retained store starts empty
		t.Fatal(err)
	}
	ops.cut()
	waitMetrics(t, metricsURL, 15*time.Second, "east critical after the broker came back", func(fams map[string]*dtoFamily) bool {
		h, _ := value(t, fams, "moh_fleet_health_state", "east")
		v, _ := value(t, fams, "moh_fleet_exporter_broker_connected", "")
		return h == 2 && v == 1
	})
	if !e.Connected() {
		t.Error("Connected() false while the metric says 1")
	}
}

package exporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/player/playertest"
	"github.com/mohproject/moh/uploads"
)

// serveMain is the exporter in a process of its own (for the benchmark's
// RSS figure): MOH_EXPORTER_TEST_SERVE is the address to serve on.
func serveMain(addr string) int {
	e, err := New(Options{BrokerURL: os.Getenv("MOH_BROKER"), CAFile: os.Getenv("MOH_CA"),
		CertFile: os.Getenv("MOH_CERT"), KeyFile: os.Getenv("MOH_KEY"), Logger: discardLogger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go e.Run(context.Background())
	if err := http.ListenAndServe(addr, e.Handler()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// BenchmarkExporter10000 publishes the retained status of 10,000
// simulated boxes straight to a real mosquitto (one publisher allowed to
// write every status topic), starts the exporter in its own process and
// measures: how long it takes to learn every box, a full scrape, its RSS,
// and the time from a box going silent (a new retained status) to the
// metric. Targets: scrape <= 1 s, RSS <= 300 MB, silence to metric <= 5 s.
// Run: go test -run '^$' -bench Exporter10000 -benchtime 1x ./fleet/exporter/
func BenchmarkExporter10000(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	ca := fleettest.MustCA(b, dir)
	acl := fleettest.ACL(nil) + "\nuser simulator\ntopic write moh/+/status\n\nuser exporter\ntopic read moh/+/status\n"
	broker := fleettest.MustBroker(b, dir, ca, acl)
	// mosquitto queues at most max_queued_messages (default 1000) for a
	// client and drops the rest, and a subscription to moh/+/status
	// brings every box's retained status at once: a fleet above ~1,000
	// boxes needs the limit raised (README: Monitoring a fleet). The
	// test broker's config is fleettest's; restart it with the line
	// added.
	broker.Stop()
	conf := filepath.Join(dir, "mosquitto.conf")
	raw, err := os.ReadFile(conf)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(conf, append(raw, fmt.Sprintf("max_queued_messages %d\n", 2*n)...), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := broker.Start(); err != nil {
		b.Fatal(err)
	}

	sc, sk, _ := ca.Issue("simulator", false)
	tc, err := fleet.TLSConfig(ca.CAFile, sc, sk)
	if err != nil {
		b.Fatal(err)
	}
	sim := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("simulator").
		SetTLSConfig(tc).SetCleanSession(true).SetOrderMatters(false))
	if tok := sim.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("simulator connect: %v", tok.Error())
	}
	defer sim.Disconnect(250)
	publish := func(i int, health player.HealthState) {
		dev := fmt.Sprintf("box-%05d", i)
		payload := simDoc(dev, i, health)
		tok := sim.Publish(fleet.StatusTopic(dev), 1, true, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("publish: %v", tok.Error())
		}
	}
	start := time.Now()
	size := len(simDoc("box-00000", 0, player.HealthOK))
	for i := range n {
		publish(i, player.HealthOK)
	}
	b.Logf("published %d retained statuses of ~%d bytes in %v", n, size, time.Since(start).Round(time.Millisecond))

	ec, ek, _ := ca.Issue("exporter", false)
	addr := testkit.FreeAddr(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MOH_EXPORTER_TEST_SERVE="+addr, "MOH_BROKER="+broker.URL(),
		"MOH_CA="+ca.CAFile, "MOH_CERT="+ec, "MOH_KEY="+ek)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start = time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://" + addr + "/metrics"
	scrapeOnce := func() (string, time.Duration) {
		t0 := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			return "", 0
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body), time.Since(t0)
	}
	for {
		text, _ := scrapeOnce()
		if strings.Contains(text, "moh_fleet_exporter_boxes "+strconv.Itoa(n)+"\n") {
			break
		}
		if time.Since(start) > 30*time.Second {
			_, got, _ := strings.Cut(text, "\nmoh_fleet_exporter_boxes ")
			got, _, _ = strings.Cut(got, "\n")
			log := broker.Log()
			b.Fatalf("exporter learnt %s of %d boxes in 30 s; broker log tail:\n%s", got, n, log[max(0, len(log)-2000):])
		}
		time.Sleep(100 * time.Millisecond)
	}
	learnt := time.Since(start)

	b.ResetTimer()
	var worst time.Duration
	var bytes int
	for range max(b.N, 5) {
		text, d := scrapeOnce()
		worst = max(worst, d)
		bytes = len(text)
	}
	b.StopTimer()
	b.ReportMetric(learnt.Seconds(), "s-start-to-whole-fleet")
	b.ReportMetric(worst.Seconds()*1000, "ms-worst-scrape")
	b.ReportMetric(float64(bytes)/(1<<20), "MB-per-scrape")
	b.ReportMetric(float64(rssKiB(b, cmd.Process.Pid))/1024, "MB-exporter-RSS")

	// A box goes silent: the time until a scrape says so.
	var worstSilence time.Duration
	for k := range 5 {
		i := 1000 + k*997
		dev := fmt.Sprintf("box-%05d", i)
		want := `moh_fleet_health_state{device="` + dev + `",site="site-` + strconv.Itoa(i%70) + `",version="4.2.0"} 2`
		t0 := time.Now()
		publish(i, player.HealthCritical)
		for {
			text, _ := scrapeOnce()
			if strings.Contains(text, want) {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("silence of %s never reached the metrics", dev)
			}
		}
		worstSilence = max(worstSilence, time.Since(t0))
	}
	b.ReportMetric(worstSilence.Seconds()*1000, "ms-worst-silence-to-metric")
	b.ReportMetric(float64(rssKiB(b, cmd.Process.Pid))/1024, "MB-exporter-RSS-after")
}

// simDoc is a full status document as mohd publishes it, playing a track.
func simDoc(dev string, i int, health player.HealthState) []byte {
	st := player.Status{Backend: "direct", Wanted: player.StatePlaying, Volume: 70, PlaylistLength: 12, Uptime: time.Duration(i) * time.Second}
	st.State = player.StatePlaying
	st.Track = &player.Track{ID: "t" + strconv.Itoa(i), Path: "/var/lib/moh/renditions/summer-loop.mp3", Name: "Summer loop"}
	st.Position, st.Duration, st.Frames, st.LevelDBFS = 42*time.Second, 180*time.Second, 1852200, -18.5
	st.Health = player.Health{State: health, Reason: "audio reaches the output"}
	if health == player.HealthCritical {
		st.Health.Reason, st.Health.Silent = "no audio reaches the output: the output stalled", true
	}
	st.Watchdog.Recoveries, st.Watchdog.Faults = uint64(i%5), uint64(i%5)
	st.Watchdog.FaultsByClass = map[string]uint64{"stalled": uint64(i % 5)}
	doc := status.Build(&playertest.Fixed{St: st, Flowing: health != player.HealthCritical},
		&uploads.DiskStatus{FreeBytes: 3 << 30, TotalBytes: 8 << 30}, "4.2.0")
	raw, _ := json.Marshal(doc)
	env, _ := json.Marshal(fleet.StatusDoc{Device: dev, Presence: fleet.Online, Groups: []string{"site-" + strconv.Itoa(i%70), "all"}, Time: time.Now().UTC(), Status: raw})
	return env
}

func rssKiB(b *testing.B, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/testkit"
)

// TestExporterAgainstRealMohd is the fleet exporter's acceptance test: a
// real mosquitto with TLS and the documented ACLs (plus a read-only
// exporter user), three real mohd linked to it, and `mohctl exporter`.
// One box's PBX stops reading its audio (the box goes critical), another
// box is killed: within 10 s the metrics say so, and promtool accepts
// them.
func TestExporterAgainstRealMohd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mohd and mosquitto")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (make deps, or apt-get install prometheus): %v", err)
	}
	bin := testkit.MustBuildMohd(t, realVersion)
	groups := map[string][]string{"east": {"paris"}, "west": {"lyon"}, "north": {"lille"}}
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	broker := fleettest.MustBroker(t, dir, ca, fleettest.ACL(groups)+"\nuser exporter\ntopic read moh/+/status\n")

	// west plays into a FIFO the test reads, as a PBX reads its
	// music-on-hold input.
	fifo := filepath.Join(t.TempDir(), "moh.pcm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pbx, err := os.OpenFile(fifo, os.O_RDWR, 0) // RDWR: does not wait for the writer
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pbx)
	t.Cleanup(func() { pbx.Close() })

	boxes := map[string]*realBox{}
	for _, dev := range []string{"east", "west", "north"} {
		cert, key := ca.MustIssue(t, dev, false)
		args := []string{"--mqtt-broker", broker.URL(), "--mqtt-ca", ca.CAFile, "--mqtt-cert", cert, "--mqtt-key", key,
			"--device-id", dev, "--groups", strings.Join(groups[dev], ",")}
		if dev == "west" {
			args = append(args, "--output", "file:"+fifo)
		}
		boxes[dev] = startMohd(t, bin, dev, args...)
	}
	for _, b := range boxes {
		waitHealthy(t, b)
	}

	cert, key := ca.MustIssue(t, "exporter", false)
	addr := testkit.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testkit.LockedBuffer
	done := make(chan int, 1)
	go func() {
		c := &cli{stdout: io.Discard, stderr: &stderr, now: time.Now, getenv: func(string) string { return "" }}
		done <- c.run(ctx, []string{"exporter", "--listen", addr, "--via", broker.URL(), "--ca", ca.CAFile, "--cert", cert, "--key", key})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("mohctl exporter exited %d:\n%s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("mohctl exporter did not stop on cancel")
		}
		if t.Failed() {
			t.Logf("mohctl exporter log:\n%s", stderr.String())
		}
	})
	url := "http://" + addr + "/metrics"

	waitScrape(t, url, 20*time.Second, "three boxes up and ok", func(v scraped) bool {
		for dev := range boxes {
			if v.get("moh_fleet_up", dev) != 1 || v.get("moh_fleet_health_state", dev) != 0 {
				return false
			}
		}
		return true
	})

	start := time.Now()
	pbx.Close() // west's audio stops: nobody reads it any more
	boxes["north"].Cmd.Process.Kill()
	var critical, down time.Duration
	text := waitScrape(t, url, 10*time.Second, "west critical and north down", func(v scraped) bool {
		if critical == 0 && v.get("moh_fleet_health_state", "west") == 2 {
			critical = time.Since(start)
		}
		if down == 0 && v.get("moh_fleet_up", "north") == 0 {
			down = time.Since(start)
		}
		return critical > 0 && down > 0
	})
	t.Logf("PBX gone to critical in the metrics: %v; kill to down: %v", critical.Round(time.Millisecond), down.Round(time.Millisecond))

	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
	v := parseScrape(t, text)
	if v.get("moh_fleet_up", "east") != 1 || v.get("moh_fleet_health_state", "east") != 0 || v.get("moh_fleet_callers_hear_silence", "west") != 1 {
		t.Errorf("east or west wrong:\n%s", text)
	}
	if !strings.Contains(text, `moh_fleet_up{device="north",site="lille",version="`+realVersion+`"} 0`) {
		t.Errorf("north's labels:\n%s", text)
	}
}

// scraped indexes a scrape by metric name and device (-1: absent).
type scraped map[string]map[string]float64

func (s scraped) get(name, device string) float64 {
	if v, ok := s[name][device]; ok {
		return v
	}
	return -1
}

func parseScrape(t *testing.T, text string) scraped {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exporter output does not parse: %v\n%s", err, text)
	}
	out := scraped{}
	for name, f := range fams {
		out[name] = map[string]float64{}
		for _, m := range f.Metric {
			dev := ""
			for _, l := range m.Label {
				if l.GetName() == "device" {
					dev = l.GetValue()
				}
			}
			if m.Gauge != nil {
				out[name][dev] = m.GetGauge().GetValue()
			} else if m.Counter != nil {
				out[name][dev] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func waitScrape(t *testing.T, url string, d time.Duration, what string, cond func(scraped) bool) string {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				last = string(b)
				if cond(parseScrape(t, last)) {
					return last
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error %v); last scrape:\n%s", d, what, err, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExporterUsage: without a broker there is nothing to export: usage,
// exit 2; --help documents the command and exits 0.
func TestExporterUsage(t *testing.T) {
	code, _, errOut := runCLI(t, "exporter", "--listen", "127.0.0.1:0")
	if code != exitUsage || !strings.Contains(errOut, "exporter needs --via") {
		t.Errorf("exporter without --via: exit %d\n%s", code, errOut)
	}
	code, out, _ := runCLI(t, "exporter", "--help")
	if code != exitOK || !strings.Contains(out, "--listen") || !strings.Contains(out, "--stale-after") {
		t.Errorf("exporter --help: exit %d\n%s", code, out)
	}
	code, _, errOut = runCLI(t, "exporter", "--via", "mqtt://plain:1883")
	if code != exitFailed || !strings.Contains(errOut, "TLS is required") {
		t.Errorf("plain MQTT: exit %d\n%s", code, errOut)
	}
}

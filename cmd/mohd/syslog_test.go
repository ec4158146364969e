package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/logfwd/logfwdtest"
	"github.com/mohproject/moh/internal/testkit"
)

// TestSyslogToRsyslog: a real mohd forwards to a real rsyslog over
// mutual TLS. An admin stop and a volume change arrive as RFC 5424
// messages with the box's fields; while rsyslog is down the API stays
// fast and the events wait in RAM, all arriving once it is back; past the
// buffer the oldest go and a "dropped" notice arrives.
func TestSyslogToRsyslog(t *testing.T) {
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	sc, sk := ca.MustIssue(t, "localhost", true)
	cc, ck := ca.MustIssue(t, "box-7", false)
	rs := logfwdtest.MustStart(t, t.TempDir(), ca.CAFile, sc, sk)

	data := t.TempDir()
	out := createToken(t, data, "admin")
	const ring = 20
	addr := testkit.FreeAddr(t)
	p := testkit.Start(t, exec.Command(mohdBin, "run", "--data", data, "--listen", addr, "--output", "null",
		"--device-id", "box-7", "--groups", "paris,floor-2",
		"--syslog", "tls://"+rs.Addr(), "--syslog-ca", ca.CAFile, "--syslog-cert", cc, "--syslog-key", ck,
		"--syslog-buffer", fmt.Sprint(ring)))
	cmd, log := p.Cmd, p.Log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mohd:\n%s", log.String())
		}
	})
	c := &apiClient{base: "http://" + addr, token: out, hc: &http.Client{Timeout: 5 * time.Second}}
	deadline := time.Now().Add(20 * time.Second)
	for _, err := c.status(); err != nil; _, err = c.status() {
		if time.Now().After(deadline) {
			t.Fatalf("mohd never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// slowest is the longest an API change took.
	var slowest time.Duration
	call := func(method, path string, body any) {
		t.Helper()
		t0 := time.Now()
		code, err := c.do(method, path, body, nil)
		slowest = max(slowest, time.Since(t0))
		if err != nil || code != 200 {
			t.Fatalf("%s %s: %d %v", method, path, code, err)
		}
	}
	admin := func(lines []logfwdtest.Line, msg string) []logfwdtest.Line {
		var out []logfwdtest.Line
		for _, l := range lines {
			if l.MsgID == "admin" && strings.TrimSpace(l.Msg) == msg {
				out = append(out, l)
			}
		}
		return out
	}

	call("POST", "/api/v1/player/stop", nil)
	call("PUT", "/api/v1/volume", map[string]int{"volume": 40})
	lines, ok := rs.WaitFor(10*time.Second, func(l []logfwdtest.Line) bool {
		return len(admin(l, "stop")) == 1 && len(admin(l, "volume")) == 1
	})
	if !ok {
		t.Fatalf("the stop and the volume change did not arrive: %+v", lines)
	}
	pid := fmt.Sprint(cmd.Process.Pid)
	for _, l := range append(admin(lines, "stop"), admin(lines, "volume")...) {
		if l.PRI != "29" || l.Version != "1" || l.Hostname != "box-7" || l.AppName != "mohd" || l.ProcID != pid {
			t.Errorf("header fields: %+v (want PRI 29, version 1, box-7, mohd, pid %s)", l, pid)
		}
		if !strings.HasPrefix(l.SD, `[moh@32473 device="box-7" site="paris" version="`) {
			t.Errorf("structured data %q", l.SD)
		}
		if ts, err := time.Parse(time.RFC3339, l.Timestamp); err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
			t.Errorf("timestamp %q: %v", l.Timestamp, err)
		}
	}

	// outage stops rsyslog, makes n volume changes and starts it again.
	outage := func(n, first int) {
		t.Helper()
		const lost = "syslog collector connection lost"
		seen := strings.Count(log.String(), lost)
		rs.Stop()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(log.String(), lost) == seen {
			if time.Now().After(deadline) {
				t.Fatal("mohd did not notice rsyslog stopping")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i := range n {
			call("PUT", "/api/v1/volume", map[string]int{"volume": first + i})
			// play/stop too: the player must not wait for the collector.
			call("POST", "/api/v1/player/play", nil)
			call("POST", "/api/v1/player/stop", nil)
		}
		if err := rs.Restart(); err != nil {
			t.Fatal(err)
		}
	}

	// Within the buffer: 6 events × 3 = 18 ≤ 20, every one arrives.
	before := len(rs.Lines())
	outage(6, 50)
	lines, ok = rs.WaitFor(20*time.Second, func(l []logfwdtest.Line) bool { return len(l) >= before+18 })
	if !ok {
		t.Fatalf("after the outage %d messages arrived, want %d", len(lines)-before, 18)
	}
	if got := len(admin(lines[before:], "volume")); got != 6 {
		t.Errorf("%d volume changes arrived, want 6", got)
	}
	if n := len(logfwdtest.WithMsgID(lines[before:], "dropped")); n != 0 {
		t.Errorf("a dropped notice within the buffer: %+v", lines[before:])
	}

	// Past the buffer: 10 × 3 = 30 events, the last 20 arrive after a
	// notice counting the 10 dropped (plus any warning mohd logged).
	before = len(rs.Lines())
	outage(10, 70)
	lines, ok = rs.WaitFor(20*time.Second, func(l []logfwdtest.Line) bool {
		return len(logfwdtest.WithMsgID(l[before:], "dropped")) == 1 && len(l) >= before+1+ring
	})
	if !ok {
		t.Fatalf("after the overflow: %+v", lines[before:])
	}
	d := logfwdtest.WithMsgID(lines[before:], "dropped")[0]
	var dropped int
	if _, err := fmt.Sscanf(strings.TrimSpace(d.Msg), "%d messages dropped", &dropped); err != nil || dropped < 10 {
		t.Errorf("dropped notice %q, want at least 10 dropped", d.Msg)
	}
	// A change that waited for the collector would hang until rsyslog
	// was back (seconds); the bound leaves room for the state file's
	// fsync on a loaded, race-instrumented machine.
	if slowest > 2*time.Second {
		t.Errorf("an API change took %v while the collector was away", slowest)
	}
	t.Logf("slowest API change: %v", slowest)
}

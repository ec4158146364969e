package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/check"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/player/playertest"
	"github.com/mohproject/moh/uploads"
)

// checkBox is a box whose player status the test sets; its health is
// the player's own model (AssessHealth), as mohd computes it, so the
// document on the broker is what a real box in that state publishes.
type checkBox struct {
	*boxOps // the commands, unused here
	mu      sync.Mutex
	st      player.Status
	flowing bool
}

func (b *checkBox) Status() status.Doc {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := status.Build(&playertest.Fixed{St: b.st, Flowing: b.flowing}, &uploads.DiskStatus{FreeBytes: 3 << 30, TotalBytes: 12 << 30}, "1.0.0")
	d.Health = player.AssessHealth(b.st, b.flowing, nil, time.Now())
	return d
}

func (b *checkBox) set(fn func(st *player.Status) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flowing = fn(&b.st)
}

// TestCheckViaBroker runs `mohctl check` against a real mosquitto with
// TLS and ACLs, the box's real fleet agent publishing its status.
func TestCheckViaBroker(t *testing.T) {
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	groups := map[string][]string{"lyon": {"fr"}}
	// Nagios gets a read-only certificate of its own: the status topics,
	// no command topic (what fleet/README.md documents).
	acl := fleettest.ACL(groups) + "\nuser nagios\ntopic read moh/+/status\n"
	broker := fleettest.MustBroker(t, dir, ca, acl)

	box := &checkBox{boxOps: &boxOps{}}
	box.set(func(st *player.Status) bool {
		st.State, st.Wanted, st.Volume, st.Uptime, st.LevelDBFS = player.StatePlaying, player.StatePlaying, 70, time.Hour, -18
		st.Watchdog.RecoveriesByRung = map[string]uint64{"replay": 2}
		st.Watchdog.FaultsByClass = map[string]uint64{"stalled": 2}
		return true
	})
	cert, key := ca.MustIssue(t, "lyon", false)
	ag, err := fleet.NewAgent(fleet.AgentOptions{
		BrokerURL: broker.URL(), CAFile: ca.CAFile, CertFile: cert, KeyFile: key,
		DeviceID: "lyon", Groups: groups["lyon"], Ops: box, Logger: slog.New(slog.DiscardHandler),
		TempDir: t.TempDir(), ChangeInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { ag.Run(actx); close(agentDone) }()
	stop := sync.OnceFunc(func() { stopAgent(); <-agentDone })
	t.Cleanup(stop)

	opCert, opKey := ca.MustIssue(t, "nagios", false)
	via := []string{"--via", broker.URL(), "--ca", ca.CAFile, "--cert", opCert, "--key", opKey}
	run := func(now func() time.Time, args ...string) (int, string) {
		var out, errb bytes.Buffer
		c := &cli{stdout: &out, stderr: &errb, now: now, getenv: func(string) string { return "" }}
		code := c.run(context.Background(), append(append([]string{"check"}, via...), args...))
		if errb.Len() > 0 {
			t.Errorf("stderr: %s", errb.String())
		}
		line := out.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || strings.Count(line, "|") > 1 {
			t.Errorf("not one line with one perfdata separator: %q", line)
		}
		return code, line
	}
	// expect checks until the answer is code: the agent publishes a
	// change within its ChangeInterval, not at once.
	expect := func(what string, code int, args []string, want ...string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, line := run(time.Now, args...)
			if got == code {
				for _, w := range want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: %q lacks %q", what, line, w)
					}
				}
				return line
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: exit %d, want %d: %s", what, got, code, line)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	dev := []string{"--device", "lyon"}

	line := expect("ok", check.OK, dev, "MOH OK - audio flowing | ",
		"disk_free=25.0%;15:;5:;0;100", "level=-18.0dB", "recoveries=2c", "faults=2c", "uptime=3600s", "volume=70;;;0;100")
	// The very line the on-box check prints from the same status.
	if want := check.Evaluate(check.FromStatus(box.Status()), check.Thresholds{}, time.Now()).Line() + "\n"; line != want {
		t.Errorf("ok: %q, the on-box evaluator says %q", line, want)
	}
	expect("own thresholds", check.Warning, append(dev, "--disk-warn", "30", "--disk-crit", "10"),
		"MOH WARNING - audio flowing; disk nearly full: 25.0% free (3.0 GiB) | ", "disk_free=25.0%;30:;10:;0;100")

	box.set(func(st *player.Status) bool {
		st.State, st.Wanted = player.StateStopped, player.StateStopped
		return false
	})
	expect("stopped", check.Warning, dev, "MOH WARNING - callers hear silence: stopped by the admin")

	box.set(func(st *player.Status) bool {
		st.State, st.Wanted, st.Fault = player.StateRecovering, player.StatePlaying, player.ParseFault("stalled: no frames for 2s")
		return false
	})
	expect("fault", check.Critical, dev, "MOH CRITICAL - callers hear silence: no audio: stalled: no frames for 2s |")

	// A box whose agent hung: the broker still holds "online", but the
	// document is older than --max-age.
	later := func() time.Time { return time.Now().Add(4 * time.Minute) }
	if code, line := run(later, dev...); code != check.Critical || !strings.Contains(line, "MOH CRITICAL - status stale: last published ") ||
		!strings.Contains(line, "over --max-age 3m0s") || strings.Contains(line, "|") {
		t.Errorf("stale: exit %d: %q", code, line)
	}
	if code, line := run(later, append(dev, "--max-age", "5m")...); code != check.Critical || !strings.Contains(line, "no audio") {
		t.Errorf("within a longer --max-age: exit %d: %q", code, line)
	}

	start := time.Now()
	run(time.Now, dev...)
	t.Logf("one check of a box with a status: %v", time.Since(start))
	start = time.Now()
	if code, line := run(time.Now, "--device", "paris"); code != check.Critical || !strings.Contains(line, "MOH CRITICAL - no status on the broker for paris") {
		t.Errorf("unknown box: exit %d: %q", code, line)
	}
	t.Logf("one check of a box without: %v", time.Since(start))

	stop() // a clean shutdown publishes "offline"
	expect("offline", check.Critical, dev, "MOH CRITICAL - box offline, last known up ")

	broker.Stop()
	if code, line := run(time.Now, dev...); code != check.Unknown || !strings.HasPrefix(line, "MOH UNKNOWN - cannot read the box's status: connect to broker") {
		t.Errorf("broker down: exit %d: %q", code, line)
	}
}

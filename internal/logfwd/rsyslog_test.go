package logfwd

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/logfwd/logfwdtest"
	"github.com/mohproject/moh/internal/testkit"
)

// collector is a real rsyslog with TLS and a Forwarder pointed at it.
type collector struct {
	rs  *logfwdtest.Rsyslog
	fwd *Forwarder
}

func newCollector(t *testing.T, ring int) *collector {
	t.Helper()
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	sc, sk := ca.MustIssue(t, "localhost", true)
	rs := logfwdtest.MustStart(t, dir, ca.CAFile, sc, sk)
	cc, ck := ca.MustIssue(t, "box-1", false)
	tc, err := fleet.TLSConfig(ca.CAFile, cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := New(Options{URL: "tls://" + rs.Addr(), TLSConfig: tc, Hostname: "box-1", Device: "box-1",
		Site: "paris", Version: "1.2.3", Ring: ring, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, fwd.Run)
	return &collector{rs: rs, fwd: fwd}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (c *collector) waitConnected(t *testing.T, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, up := c.fwd.Stats(); up == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("forwarder connected never became %v", want)
}

// TestRsyslogFields: an event and a slog warning reach a real rsyslog
// over mutual TLS as RFC 5424 messages whose every field rsyslog parses
// as sent; an info record is not forwarded.
func TestRsyslogFields(t *testing.T) {
	c := newCollector(t, 0)
	start := time.Now()
	c.fwd.Send(Message{Severity: SevNotice, MsgID: "admin", Text: "stop by admin",
		Event: []Param{{"fault", `odd "quoted] \ value`}}})
	log := slog.New(NewHandler(slog.DiscardHandler, c.fwd, slog.LevelWarn)).With("component", "watchdog")
	log.Info("chatter that stays home")
	log.Warn("output stalled", "for", "5s", "reason", "no frames")

	lines, ok := c.rs.WaitFor(10*time.Second, func(l []logfwdtest.Line) bool { return len(l) >= 2 })
	if !ok {
		t.Fatalf("rsyslog received %d messages, want 2: %+v", len(lines), lines)
	}
	if len(lines) != 2 {
		t.Fatalf("received %d messages, want 2 (info must not be forwarded): %+v", len(lines), lines)
	}
	a, w := lines[0], lines[1]
	pid := fmt.Sprint(os.Getpid())
	for _, check := range []struct{ name, got, want string }{
		{"pri", a.PRI, "29"}, // daemon.notice
		{"version", a.Version, "1"},
		{"hostname", a.Hostname, "box-1"},
		{"app", a.AppName, "mohd"},
		{"procid", a.ProcID, pid},
		{"msgid", a.MsgID, "admin"},
		{"sd", a.SD, `[moh@32473 device="box-1" site="paris" version="1.2.3"][event@32473 fault="odd \"quoted\] \\ value"]`},
		{"msg", strings.TrimSpace(a.Msg), "stop by admin"},
		{"warn pri", w.PRI, "28"}, // daemon.warning
		{"warn msgid", w.MsgID, "log"},
		{"warn msg", strings.TrimSpace(w.Msg), `output stalled component=watchdog for=5s reason="no frames"`},
	} {
		if check.got != check.want {
			t.Errorf("%s = %q, want %q", check.name, check.got, check.want)
		}
	}
	ts, err := time.Parse(time.RFC3339, a.Timestamp)
	if err != nil {
		t.Fatalf("timestamp %q: %v", a.Timestamp, err)
	}
	if d := ts.Sub(start); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("timestamp %v is %v from the send", ts, d)
	}
}

// TestRsyslogOutage: messages sent while rsyslog is down wait in the
// ring and all arrive, in order, once it is back; with more than the ring
// holds, the oldest go and a "N messages dropped" notice arrives first.
func TestRsyslogOutage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ring, sends int
	}{
		{"fits", 100, 40},
		{"overflows", 10, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector(t, tc.ring)
			c.fwd.Send(Message{Severity: SevNotice, MsgID: "admin", Text: "before"})
			if _, ok := c.rs.WaitFor(10*time.Second, func(l []logfwdtest.Line) bool { return len(l) == 1 }); !ok {
				t.Fatal("first message never arrived")
			}
			c.rs.Stop()
			c.waitConnected(t, false)
			for i := range tc.sends {
				c.fwd.Send(Message{Severity: SevNotice, MsgID: "admin", Text: fmt.Sprintf("during %d", i)})
			}
			if err := c.rs.Restart(); err != nil {
				t.Fatal(err)
			}
			kept := min(tc.sends, tc.ring)
			want := 1 + kept
			if tc.sends > tc.ring {
				want++
			}
			lines, ok := c.rs.WaitFor(15*time.Second, func(l []logfwdtest.Line) bool { return len(l) >= want })
			if !ok {
				t.Fatalf("received %d messages, want %d", len(lines), want)
			}
			time.Sleep(200 * time.Millisecond)
			lines = c.rs.Lines()
			if len(lines) != want {
				t.Fatalf("received %d messages, want exactly %d", len(lines), want)
			}
			rest := lines[1:]
			if tc.sends > tc.ring {
				n := rest[0]
				if n.MsgID != "dropped" || strings.TrimSpace(n.Msg) != fmt.Sprintf("%d messages dropped while the collector was unreachable", tc.sends-tc.ring) || n.PRI != "28" {
					t.Errorf("dropped notice = %+v", n)
				}
				rest = rest[1:]
			}
			for i, l := range rest {
				if w := fmt.Sprintf("during %d", tc.sends-kept+i); strings.TrimSpace(l.Msg) != w {
					t.Errorf("message %d = %q, want %q", i, l.Msg, w)
				}
			}
		})
	}
}

// TestSendNeverBlocks: with the collector gone and the ring full, Send
// still returns at once.
func TestSendNeverBlocks(t *testing.T) {
	c := newCollector(t, 50)
	c.rs.Stop()
	c.waitConnected(t, false)
	var worst time.Duration
	for i := range 20000 {
		t0 := time.Now()
		c.fwd.Send(Message{Severity: SevWarning, MsgID: "log", Text: fmt.Sprintf("m %d", i)})
		worst = max(worst, time.Since(t0))
	}
	// A Send that waited for the network would hang here for good; the
	// bound only leaves room for a loaded, race-instrumented machine.
	if worst > 100*time.Millisecond {
		t.Fatalf("slowest of 20,000 sends took %v", worst)
	}
	if q := c.fwd.Queued(); q != 50 {
		t.Fatalf("queued %d, want the ring's 50", q)
	}
	if _, dropped, _ := c.fwd.Stats(); dropped != 20000-50 {
		t.Fatalf("dropped %d, want %d", dropped, 20000-50)
	}
}

package check

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// TestFromStatusJudgesAsRun: the status document of a box, judged by
// Evaluate, gives the very line `mohd check` prints from that box's
// /healthz and /metrics, thresholds and perfdata included.
func TestFromStatusJudgesAsRun(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name  string
		setup func(b *box)
		th    Thresholds
		code  int
	}{
		{"healthy", func(b *box) {}, Thresholds{}, OK},
		{"disk nearly full", func(b *box) { b.free = 100 << 20 }, Thresholds{}, Warning},
		{"disk full", func(b *box) { b.free = 20 << 20 }, Thresholds{}, Critical},
		{"own disk thresholds", func(b *box) { b.free = 300 << 20 }, Thresholds{DiskWarnPct: 40, DiskCritPct: 35}, Critical},
		{"recent fault", func(b *box) {
			b.p.St.Watchdog.LastFault = &player.Event{Time: now.Add(-5 * time.Minute), Fault: "stalled"}
		}, Thresholds{}, Warning},
		{"fault within --recent-fault", func(b *box) {
			b.p.St.Watchdog.LastFault = &player.Event{Time: now.Add(-20 * time.Minute), Fault: "stalled"}
		}, Thresholds{RecentFault: 30 * time.Minute}, Warning},
		{"old fault", func(b *box) {
			b.p.St.Watchdog.LastFault = &player.Event{Time: now.Add(-time.Hour), Fault: "stalled"}
		}, Thresholds{}, OK},
		{"volume 0", func(b *box) { b.p.St.Volume = 0 }, Thresholds{}, Warning},
		{"silent", func(b *box) {
			b.p.Flowing = false
			b.p.St.State, b.p.St.Fault = player.StateRecovering, player.ParseFault("stalled: no frames for 2s")
		}, Thresholds{}, Critical},
		{"stopped by admin", func(b *box) {
			b.p.Flowing = false
			b.p.St.State, b.p.St.Wanted = player.StateStopped, player.StateStopped
		}, Thresholds{}, Warning},
		{"mqtt down", func(b *box) { b.mqtt = false }, Thresholds{}, Warning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &box{p: &fakePlayer{Flowing: true, St: player.Status{
				BackendStatus: player.BackendStatus{State: player.StatePlaying, LevelDBFS: -20},
				Backend:       "direct", Wanted: player.StatePlaying, Volume: 80, Uptime: time.Hour,
				Watchdog: player.WatchdogStatus{
					RecoveriesByRung: map[string]uint64{"replay": 2, "restart": 1},
					FaultsByClass:    map[string]uint64{"stalled": 3},
				},
			}}, free: 500 << 20, mqtt: true, now: now}
			c.setup(b)
			srv := httptest.NewServer(b.handler())
			defer srv.Close()
			var out bytes.Buffer
			code := Run(context.Background(), Options{
				URL: srv.URL, DiskWarnPct: c.th.DiskWarnPct, DiskCritPct: c.th.DiskCritPct,
				RecentFault: c.th.RecentFault, Now: func() time.Time { return now },
			}, &out)
			if code != c.code {
				t.Fatalf("mohd check exit %d, want %d: %s", code, c.code, out.String())
			}

			// The document the fleet agent publishes for this box.
			d := status.Build(b.p, &uploads.DiskStatus{FreeBytes: b.free, TotalBytes: 1000 << 20}, "test")
			d.Health = b.health()
			r := Evaluate(FromStatus(d), c.th, now)
			if r.Code() != c.code || r.Line()+"\n" != out.String() {
				t.Errorf("from the status document: exit %d\n%s\nmohd check: exit %d\n%s", r.Code(), r.Line(), code, out.String())
			}
		})
	}
}

func TestFromStatusOddBoxes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ok := player.Health{State: player.HealthOK, Reason: "audio flowing"}
	cases := []struct {
		name string
		doc  status.Doc
		code int
		want []string
		not  []string
	}{
		{"disk unreadable", status.Doc{
			Status: player.Status{Health: ok},
			Disk:   &uploads.DiskStatus{Warning: true, Message: "cannot read free disk space: statfs: EIO"},
		}, Warning, []string{"MOH WARNING - audio flowing; cannot read free disk space |"}, []string{"disk_free="}},
		{"no library", status.Doc{Status: player.Status{Health: ok}}, OK,
			[]string{"MOH OK - audio flowing | level=0.0dB recoveries=0c faults=0c uptime=0s volume=0;;;0;100"}, nil},
		// A box older than the health model sends no verdict: the check
		// cannot tell, and says so rather than guessing.
		{"no health verdict", status.Doc{}, Unknown,
			[]string{`MOH UNKNOWN - unexpected health state "" from the status document`}, nil},
		{"a '|' in the reason", status.Doc{Status: player.Status{Health: player.Health{State: player.HealthWarning, Reason: "a|b\nc"}}}, Warning,
			[]string{"MOH WARNING - a/b c |"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Evaluate(FromStatus(c.doc), Thresholds{}, now)
			line := r.Line()
			if r.Code() != c.code {
				t.Errorf("exit %d, want %d: %s", r.Code(), c.code, line)
			}
			if strings.Count(line, "|") > 1 || strings.ContainsAny(line, "\r\n") {
				t.Errorf("not one line with one perfdata separator: %q", line)
			}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("output %q lacks %q", line, w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(line, w) {
					t.Errorf("output %q has %q", line, w)
				}
			}
		})
	}
}

func TestFail(t *testing.T) {
	var out bytes.Buffer
	r := Fail(Critical, "box offline |\nsince noon")
	if code := r.Write(&out); code != Critical || out.String() != "MOH CRITICAL - box offline / since noon\n" {
		t.Fatalf("exit %d: %q", code, out.String())
	}
}

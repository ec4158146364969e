package player

import (
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Each class starts the ladder at the rung that can help with it: what
// the watchdog used to work out from the fault's text.
func TestFaultClassFirstRung(t *testing.T) {
	want := map[FaultClass]Rung{
		FaultMPDError:        RungClearError,
		FaultMPDDisconnected: RungReconnect,
		FaultMPDExited:       RungRestartBackend,
		FaultMPDTimeout:      RungRestartBackend,
		FaultSinkFailed:      RungRestartBackend,
	}
	for _, c := range FaultClasses {
		w, ok := want[c]
		if !ok {
			w = RungReplay
		}
		if got := c.FirstRung(); got != w {
			t.Errorf("%s starts at %s, want %s", c, got, w)
		}
	}
	if got := FaultClass("from-a-newer-box").FirstRung(); got != RungReplay {
		t.Errorf("an unknown class starts at %s, want replay", got)
	}
}

// The wire forms are what they were when faults were strings: "class:
// detail" in the status document, the bare class in events and in the
// watchdog's status, nothing at all when healthy; and a status read
// back from a box has the fault it sent.
func TestFaultWireForm(t *testing.T) {
	for _, tc := range []struct {
		f    Fault
		wire string
	}{
		{Fault{Class: FaultMPDExited, Detail: "signal: killed"}, `"mpd-exited: signal: killed"`},
		{Fault{Class: FaultMPDError, Detail: "Failed to open: x (mpd-output: another client disabled output \"n\")"}, `"mpd-error: Failed to open: x (mpd-output: another client disabled output \"n\")"`},
		{Fault{Class: FaultNoTrack}, `"no-track"`},
	} {
		b, err := json.Marshal(BackendStatus{State: StateFailed, Fault: tc.f})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"fault":`+tc.wire) {
			t.Errorf("status %s, want \"fault\":%s", b, tc.wire)
		}
		var back Status
		if err := json.Unmarshal(b, &back); err != nil || back.Fault != tc.f {
			t.Errorf("read back %+v (%v), want %+v", back.Fault, err, tc.f)
		}
	}
	b, _ := json.Marshal(BackendStatus{State: StatePlaying})
	if strings.Contains(string(b), `"fault"`) {
		t.Errorf("healthy status carries a fault: %s", b)
	}
	b, _ = json.Marshal(Event{Kind: "fault", Fault: FaultStalled, Message: "m"})
	if !strings.Contains(string(b), `"fault":"stalled"`) {
		t.Errorf("event %s", b)
	}
	b, _ = json.Marshal(WatchdogStatus{Fault: FaultSinkFailed})
	if !strings.Contains(string(b), `"fault":"sink-failed"`) {
		t.Errorf("watchdog status %s", b)
	}
	var wrong Status
	if err := json.Unmarshal([]byte(`{"fault":42}`), &wrong); err == nil {
		t.Error("a fault that is not a string decoded")
	}
}

// The vocabulary is the classes moh produces: each one listed for
// monitoring is set somewhere in the package, and each one set is listed.
func TestFaultClassesAreTheOnesProduced(t *testing.T) {
	fset := token.NewFileSet()
	defined := map[string]FaultClass{} // constant name → class
	used := map[string]bool{}
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "FaultClass" && name == "faults.go" {
					for i, v := range n.Names {
						lit := n.Values[i].(*ast.BasicLit).Value
						defined[v.Name] = FaultClass(strings.Trim(lit, `"`))
					}
					return false
				}
			case *ast.Ident:
				if name != "faults.go" && strings.HasPrefix(n.Name, "Fault") {
					used[n.Name] = true
				}
			}
			return true
		})
	}
	if len(defined) == 0 {
		t.Fatal("no FaultClass constants found in faults.go")
	}
	for name, class := range defined {
		if !used[name] {
			t.Errorf("%s (%s) is never produced", name, class)
		}
		if !slices.Contains(FaultClasses, class) {
			t.Errorf("%s (%s) is not in FaultClasses", name, class)
		}
	}
	if len(FaultClasses) != len(defined) {
		t.Errorf("FaultClasses has %d classes, faults.go defines %d", len(FaultClasses), len(defined))
	}
}

// A sink the direct backend cannot open is a sink-failed fault, with the
// sink's own words as the detail, and the watchdog starts its ladder at
// the restart rung.
func TestDirectSinkFaultIsTyped(t *testing.T) {
	dir := t.TempDir()
	fb, err := EnsureFallback(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirect(DirectOptions{
		Logger:      wdTestLogger(t),
		OpenSink:    func(context.Context) (Sink, error) { return nil, errors.New("no card here") },
		SinkBackoff: 10 * time.Millisecond, SinkBackoffMax: 20 * time.Millisecond,
	})
	d.SetPlaylist([]Track{fb})
	d.Play()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s := superviseBackend(t, d, WatchdogOptions{Interval: 20 * time.Millisecond, RecoverTimeout: 100 * time.Millisecond})
	pollUntil(t, 5*time.Second, "sink fault", func() bool { return d.Status().Fault.Class == FaultSinkFailed })
	if f := d.Status().Fault; f.Detail != "sink open: no card here" {
		t.Errorf("fault %q, want the sink's words as the detail", f)
	}
	pollUntil(t, 5*time.Second, "watchdog attempt", func() bool { return s.w.Status().Attempts > 0 })
	ws := s.w.Status()
	if ws.FaultsByClass[string(FaultSinkFailed)] == 0 || ws.AttemptsByRung[RungRestartBackend.String()] == 0 {
		t.Errorf("watchdog %v %v: want a sink-failed fault met with restart-backend", ws.FaultsByClass, ws.AttemptsByRung)
	}
}

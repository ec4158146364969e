package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet"
	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/player"
	"github.com/mohproject/moh/uploads"
)

// boxOps is the box behind a real fleet agent in these tests.
type boxOps struct {
	mu     sync.Mutex
	volume int
	state  string
	tracks []track
}

// Status is built as mohd builds it (status.Build), so what the test
// reads through the broker is the document a real box publishes.
func (o *boxOps) Status() status.Doc {
	o.mu.Lock()
	defer o.mu.Unlock()
	return status.Build(boxPlayer{state: player.State(o.state), volume: o.volume},
		&uploads.DiskStatus{FreeBytes: 3 << 30, TotalBytes: 12 << 30}, "1.0.0")
}

// boxPlayer is the player behind a boxOps.
type boxPlayer struct {
	state  player.State
	volume int
}

func (p boxPlayer) Status() player.Status {
	var st player.Status
	st.State, st.Volume, st.Uptime = p.state, p.volume, time.Hour
	st.Health = player.Health{State: player.HealthOK, Reason: "playing"}
	if p.state != player.StatePlaying {
		st.Health = player.Health{State: player.HealthWarning, Reason: "stopped", Silent: true}
	}
	return st
}
func (p boxPlayer) AudioFlowing() bool { return p.state == player.StatePlaying }
func (o *boxOps) Tracks() any {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]track{}, o.tracks...)
}
func (o *boxOps) Play() error           { o.mu.Lock(); o.state = "playing"; o.mu.Unlock(); return nil }
func (o *boxOps) Stop() error           { o.mu.Lock(); o.state = "stopped"; o.mu.Unlock(); return nil }
func (o *boxOps) Next()                 {}
func (o *boxOps) SetVolume(v int) error { o.mu.Lock(); o.volume = v; o.mu.Unlock(); return nil }
func (o *boxOps) AddTrack(_ context.Context, name string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	id := "x" + name + "-" + string(rune('0'+len(b)%10))
	o.tracks = append(o.tracks, track{ID: id, Name: name})
	return id, nil
}
func (o *boxOps) RemoveTrack(id string) error { return nil }
func (o *boxOps) Reorder([]string) error      { return nil }

func TestViaMQTT(t *testing.T) {
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	groups := map[string][]string{"a": {"g"}, "b": {"g"}, "c": {"g"}, "never": {"g"}}
	broker := fleettest.MustBroker(t, dir, ca, fleettest.ACL(groups))

	body := []byte("a verified track")
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer files.Close()

	ops := map[string]*boxOps{}
	stops := map[string]context.CancelFunc{}
	for _, dev := range []string{"a", "b", "c"} {
		cert, key := ca.MustIssue(t, dev, false)
		ops[dev] = &boxOps{volume: 50, state: "playing"}
		ag, err := fleet.NewAgent(fleet.AgentOptions{
			BrokerURL: broker.URL(), CAFile: ca.CAFile, CertFile: cert, KeyFile: key,
			DeviceID: dev, Groups: groups[dev], Ops: ops[dev], Logger: slog.New(slog.DiscardHandler),
			HTTPClient: files.Client(), TempDir: t.TempDir(), ChangeInterval: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { ag.Run(ctx); close(done) }()
		stops[dev] = func() { cancel(); <-done }
		t.Cleanup(stops[dev])
		deadline := time.Now().Add(10 * time.Second)
		for !ag.Connected() {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s did not connect", dev)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stops["c"]() // c shuts down cleanly: it publishes "offline"

	inv := Inventory{}
	for _, n := range []string{"a", "b", "c", "never"} {
		inv.Boxes = append(inv.Boxes, Box{Name: n, URL: "http://unused.invalid", Groups: groups[n]})
	}
	invPath := filepath.Join(dir, "inventory.json")
	raw, _ := json.Marshal(inv)
	os.WriteFile(invPath, raw, 0o600)
	opCert, opKey := ca.MustIssue(t, "operator", false)
	via := []string{"--inventory", invPath, "--via", broker.URL(), "--ca", ca.CAFile, "--cert", opCert, "--key", opKey, "--timeout", "1500ms"}

	code, out, errOut := runCLI(t, append(via, "status")...)
	if code != player.HealthCritical.Code() || !strings.Contains(errOut, "2 of 4 boxes failed") {
		t.Fatalf("status exit %d: %s %s", code, out, errOut)
	}
	// The same document as over HTTP: version, uptime and disk included.
	if l := line(t, out, "a"); !strings.Contains(l, "playing") || !strings.Contains(l, "1.0.0") ||
		!strings.Contains(l, "3.0G free (25%)") || !strings.Contains(l, "1h00m") || !strings.Contains(l, "OK") {
		t.Errorf("a: %q", l)
	}
	if l := line(t, out, "c"); !strings.Contains(l, "offline") || !strings.Contains(l, "CRITICAL") {
		t.Errorf("c: %q", l)
	}
	if l := line(t, out, "never"); !strings.Contains(l, "no status on the broker") {
		t.Errorf("never: %q", l)
	}

	code, out, _ = runCLI(t, append(via, "volume", "25", "--group", "g")...)
	if code != exitFailed || !strings.Contains(line(t, out, "a"), "ok") || !strings.Contains(line(t, out, "c"), "no reply") {
		t.Errorf("volume exit %d:\n%s", code, out)
	}
	if ops["a"].volume != 25 || ops["b"].volume != 25 {
		t.Errorf("volumes %d %d", ops["a"].volume, ops["b"].volume)
	}

	track := filepath.Join(dir, "hold.mp3")
	os.WriteFile(track, body, 0o600)
	code, out, errOut = runCLI(t, append(via, "push", track, "--url", files.URL+"/hold.mp3", "--group", "a")...)
	if code != exitOK || !strings.Contains(out, "added hold.mp3") {
		t.Errorf("push: %d %s %s", code, out, errOut)
	}
	// A local file that differs from what the URL serves is refused by
	// the box (sha256 mismatch) and not added.
	os.WriteFile(track, []byte("another file"), 0o600)
	code, out, _ = runCLI(t, append(via, "push", track, "--url", files.URL+"/hold.mp3", "--group", "b")...)
	if code != exitFailed || !strings.Contains(out, "checksum_mismatch") || len(ops["b"].tracks) != 0 {
		t.Errorf("mismatched push: %d %s", code, out)
	}
	if code, _, _ = runCLI(t, append(via, "token", "rotate")...); code != exitFailed {
		t.Errorf("token rotate over MQTT: exit %d", code)
	}
}

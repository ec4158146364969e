package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/status"
	"github.com/mohproject/moh/internal/testkit"
	"github.com/mohproject/moh/player"
)

// fakeOps records what the agent asked the box to do. The broker, TLS
// and ACLs under test are real; only the player behind the agent is not.
type fakeOps struct {
	mu      sync.Mutex
	calls   []string
	volume  int
	playing bool
	tracks  map[string][]byte
	order   []string
}

func newFakeOps() *fakeOps { return &fakeOps{volume: 50, playing: true, tracks: map[string][]byte{}} }

func (f *fakeOps) record(c string) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

func (f *fakeOps) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeOps) Status() status.Doc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d status.Doc
	d.State = player.StateStopped
	if f.playing {
		d.State = player.StatePlaying
	}
	d.Volume, d.PlaylistLength = f.volume, len(f.order)
	return d
}

func (f *fakeOps) Tracks() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.order...)
}

func (f *fakeOps) Play() error {
	f.record("play")
	f.mu.Lock()
	f.playing = true
	f.mu.Unlock()
	return nil
}

func (f *fakeOps) Stop() error {
	f.record("stop")
	f.mu.Lock()
	f.playing = false
	f.mu.Unlock()
	return nil
}

func (f *fakeOps) Next() { f.record("next") }

func (f *fakeOps) SetVolume(v int) error {
	f.record("volume")
	f.mu.Lock()
	f.volume = v
	f.mu.Unlock()
	return nil
}

func (f *fakeOps) AddTrack(_ context.Context, name string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	f.record("add:" + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := "t" + name
	f.tracks[id] = b
	f.order = append(f.order, id)
	return id, nil
}

func (f *fakeOps) RemoveTrack(id string) error {
	f.record("remove:" + id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tracks[id]; !ok {
		return errors.New("no such track")
	}
	delete(f.tracks, id)
	return nil
}

func (f *fakeOps) Reorder(order []string) error {
	f.record("reorder")
	f.mu.Lock()
	f.order = append([]string(nil), order...)
	f.mu.Unlock()
	return nil
}

// env is a real mosquitto with TLS and the documented ACL.
type env struct {
	ca     *fleettest.CA
	broker *fleettest.Broker
	groups map[string][]string
}

func newEnv(t testing.TB, groups map[string][]string) *env {
	t.Helper()
	dir := t.TempDir()
	ca := fleettest.MustCA(t, dir)
	b := fleettest.MustBroker(t, dir, ca, fleettest.ACL(groups))
	return &env{ca: ca, broker: b, groups: groups}
}

func (e *env) certs(t testing.TB, cn string) (string, string) {
	t.Helper()
	return e.ca.MustIssue(t, cn, false)
}

// startAgentChild runs a fleet agent for dev in a child process (this
// test binary, MOH_FLEET_TEST_AGENT=1), so a test can kill it as a power
// cut would and watch what the broker does.
func (e *env) startAgentChild(t *testing.T, dev string) *testkit.Proc {
	t.Helper()
	c, k := e.certs(t, dev)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MOH_FLEET_TEST_AGENT=1", "MOH_BROKER="+e.broker.URL(),
		"MOH_CA="+e.ca.CAFile, "MOH_CERT="+c, "MOH_KEY="+k, "MOH_DEVICE="+dev)
	return testkit.Start(t, cmd)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// agentOptions put an agent for device on e's broker with a certificate
// of its own; the caller adds the rest.
func (e *env) agentOptions(t testing.TB, device string, ops Ops) AgentOptions {
	t.Helper()
	c, k := e.certs(t, device)
	return AgentOptions{BrokerURL: e.broker.URL(), CAFile: e.ca.CAFile, CertFile: c, KeyFile: k,
		DeviceID: device, Ops: ops, Logger: testLogger(t)}
}

// runAgent runs a in the background until cancel; done then gets what
// Run returned.
func runAgent(a *Agent) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- a.Run(ctx) }()
	return cancel, ch
}

// startAgent runs an agent for device in the background until the test
// ends.
func (e *env) startAgent(t testing.TB, device string, ops Ops, tweak func(*AgentOptions)) *Agent {
	t.Helper()
	o := e.agentOptions(t, device, ops)
	o.Groups = e.groups[device]
	o.ChangeInterval, o.MaxReconnectInterval = 100*time.Millisecond, time.Second
	o.TempDir = t.TempDir()
	if tweak != nil {
		tweak(&o)
	}
	a, err := NewAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runAgent(a)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", device, err)
		}
	})
	waitFor(t, 10*time.Second, device+" connected", a.Connected)
	return a
}

func (e *env) operator(t testing.TB) *Client {
	t.Helper()
	c, k := e.certs(t, "operator")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, ClientOptions{BrokerURL: e.broker.URL(), CAFile: e.ca.CAFile, CertFile: c, KeyFile: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, d, 10*time.Millisecond, what, cond)
}

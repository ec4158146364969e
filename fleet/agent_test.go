package fleet

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

var testGroups = map[string][]string{
	"box-a": {"lobby", "paris"},
	"box-b": {"berlin"},
	"box-c": {"paris"},
}

func send(t *testing.T, op *Client, target Target, cmd Command, expect ...string) map[string]Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := op.Send(ctx, target, cmd, expect)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOwnAndGroupCommands(t *testing.T) {
	e := newEnv(t, testGroups)
	opsA, opsB, opsC := newFakeOps(), newFakeOps(), newFakeOps()
	e.startAgent(t, "box-a", opsA, nil)
	e.startAgent(t, "box-b", opsB, nil)
	e.startAgent(t, "box-c", opsC, nil)
	op := e.operator(t)

	vol := 30
	r := send(t, op, Target{Device: "box-a"}, Command{Op: OpVolume, Volume: &vol}, "box-a")
	if !r["box-a"].OK {
		t.Fatalf("box-a volume reply: %+v", r)
	}
	if got := opsA.Calls(); !slices.Equal(got, []string{"volume"}) {
		t.Fatalf("box-a calls = %v", got)
	}

	// paris = box-a and box-c; box-b must not act.
	r = send(t, op, Target{Group: "paris"}, Command{Op: OpStop}, "box-a", "box-c")
	if len(r) != 2 || !r["box-a"].OK || !r["box-c"].OK {
		t.Fatalf("group replies = %+v", r)
	}
	// A command B does get, sent after: once B acted on it, a stray
	// group command would have been delivered before.
	r = send(t, op, Target{Group: "berlin"}, Command{Op: OpNext}, "box-b")
	if !r["box-b"].OK {
		t.Fatalf("berlin reply = %+v", r)
	}
	if got := opsB.Calls(); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("box-b calls = %v, want only next", got)
	}
	if got := opsC.Calls(); !slices.Equal(got, []string{"stop"}) {
		t.Fatalf("box-c calls = %v", got)
	}

	// Status replies carry the box's status; retained docs say online
	// and reflect the stop.
	r = send(t, op, Target{Device: "box-c"}, Command{Op: OpStatus}, "box-c")
	var st map[string]any
	if err := json.Unmarshal(r["box-c"].Result, &st); err != nil || st["state"] != "stopped" {
		t.Fatalf("box-c status = %s (%v)", r["box-c"].Result, err)
	}
	waitFor(t, 5*time.Second, "retained status of box-c shows stopped", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		docs, err := op.Statuses(ctx, []string{"box-a", "box-b", "box-c"})
		if err != nil || len(docs) != 3 {
			return false
		}
		for _, d := range docs {
			if d.Presence != Online {
				return false
			}
		}
		var s map[string]any
		json.Unmarshal(docs["box-c"].Status, &s)
		return s["state"] == "stopped"
	})
}

func TestExpiredAndRepeatedCommands(t *testing.T) {
	e := newEnv(t, testGroups)
	ops := newFakeOps()
	e.startAgent(t, "box-a", ops, nil)
	op := e.operator(t)

	r := send(t, op, Target{Device: "box-a"}, Command{Op: OpStop, Expires: time.Now().Add(-time.Second)}, "box-a")
	if r["box-a"].OK || r["box-a"].Error == nil || r["box-a"].Error.Code != CodeExpired {
		t.Fatalf("expired command reply = %+v", r["box-a"])
	}
	r = send(t, op, Target{Device: "box-a"}, Command{ID: "no-expiry", Op: OpStop, Expires: time.Time{}.Add(time.Nanosecond)}, "box-a")
	if r["box-a"].OK {
		t.Fatalf("command with a zero-ish expiry was accepted: %+v", r)
	}

	cmd := Command{ID: "req-1", Op: OpNext, Expires: time.Now().Add(time.Minute)}
	for i := range 3 {
		r = send(t, op, Target{Device: "box-a"}, cmd, "box-a")
		if !r["box-a"].OK {
			t.Fatalf("repeat %d: %+v", i, r)
		}
	}
	// Same id through a group topic too (box-a is in lobby).
	r = send(t, op, Target{Group: "lobby"}, cmd, "box-a")
	if !r["box-a"].OK {
		t.Fatalf("group repeat: %+v", r)
	}
	if got := ops.Calls(); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("calls = %v, want exactly one next", got)
	}
	bad := 101
	r = send(t, op, Target{Device: "box-a"}, Command{Op: OpVolume, Volume: &bad}, "box-a")
	if r["box-a"].Error == nil || r["box-a"].Error.Code != CodeBadRequest {
		t.Fatalf("volume 101 reply = %+v", r)
	}
	r = send(t, op, Target{Device: "box-a"}, Command{Op: "reboot-now"}, "box-a")
	if r["box-a"].Error == nil || r["box-a"].Error.Code != CodeBadRequest {
		t.Fatalf("unknown op reply = %+v", r)
	}
}

func TestAddTrackVerifiesBeforeIngest(t *testing.T) {
	body := []byte("ID3 pretend this is a house-format mp3 " + time.Now().String())
	sum := sha256.Sum256(body)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hold.mp3" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()

	e := newEnv(t, testGroups)
	ops := newFakeOps()
	tmp := t.TempDir()
	e.startAgent(t, "box-a", ops, func(o *AgentOptions) {
		o.HTTPClient = srv.Client()
		o.TempDir = tmp
		o.MaxTrackBytes = 1000
	})
	op := e.operator(t)

	cases := []struct {
		name, url, sum, code string
	}{
		{"wrong sha256", srv.URL + "/hold.mp3", hex.EncodeToString(make([]byte, 32)), CodeChecksum},
		{"not https", "http" + srv.URL[5:] + "/hold.mp3", hex.EncodeToString(sum[:]), CodeDownload},
		{"404", srv.URL + "/missing.mp3", hex.EncodeToString(sum[:]), CodeDownload},
		{"bad hash", srv.URL + "/hold.mp3", "xyz", CodeDownload},
		{"good", srv.URL + "/hold.mp3", hex.EncodeToString(sum[:]), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := send(t, op, Target{Device: "box-a"}, Command{Op: OpAddTrack, URL: c.url, SHA256: c.sum}, "box-a")["box-a"]
			if c.code == "" {
				if !r.OK {
					t.Fatalf("reply = %+v", r)
				}
				return
			}
			if r.OK || r.Error == nil || r.Error.Code != c.code {
				t.Fatalf("reply = %+v, want code %s", r, c.code)
			}
		})
	}
	if got := ops.Calls(); !slices.Equal(got, []string{"add:hold.mp3"}) {
		t.Fatalf("library saw %v, want only the verified add", got)
	}
	ops.mu.Lock()
	got := ops.tracks["thold.mp3"]
	ops.mu.Unlock()
	if string(got) != string(body) {
		t.Fatalf("ingested %q", got)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

// rawClient connects with a device's certificate but speaks MQTT
// directly, as an attacker holding that certificate would.
func (e *env) rawClient(t *testing.T, cn string) mqtt.Client {
	t.Helper()
	c, k := e.certs(t, cn)
	tc, err := TLSConfig(e.ca.CAFile, c, k)
	if err != nil {
		t.Fatal(err)
	}
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL()).SetClientID(cn + "-raw").SetTLSConfig(tc).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("raw connect %s: %v", cn, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return cl
}

func TestACLIsolatesBoxes(t *testing.T) {
	e := newEnv(t, testGroups)
	opsB := newFakeOps()
	e.startAgent(t, "box-b", opsB, nil)
	op := e.operator(t)
	// box-a's certificate, used by hand. (The ACL keys on the CN, so the
	// client id does not matter.)
	a := e.rawClient(t, "box-a")

	var mu sync.Mutex
	var seenByA []string
	got := func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		seenByA = append(seenByA, m.Topic())
		mu.Unlock()
	}
	for _, f := range []string{"moh/box-b/reply/#", "moh/+/reply/#", "moh/box-b/cmd", "moh/box-a/cmd"} {
		if tok := a.Subscribe(f, 1, got); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}

	// A forges a stop for B, on B's topic and on a group A is not in.
	forged, _ := json.Marshal(Command{ID: "forged", Op: OpStop, Expires: time.Now().Add(time.Minute)})
	for _, topic := range []string{CommandTopic("box-b"), GroupTopic("berlin")} {
		if tok := a.Publish(topic, 1, false, forged); !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("publish to %s timed out", topic)
		}
	}
	// The operator talks to B; B's reply goes to moh/box-b/reply/...
	r := send(t, op, Target{Device: "box-b"}, Command{Op: OpNext}, "box-b")
	if !r["box-b"].OK {
		t.Fatalf("operator → box-b: %+v", r)
	}
	if got := opsB.Calls(); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("box-b acted on %v; the forged stop must never arrive", got)
	}
	// Now a marker on A's own command topic, which A may read: once A
	// has it, B's earlier reply would have been delivered already.
	marker, _ := json.Marshal(map[string]string{"marker": "1"})
	c, k := e.certs(t, "operator")
	tc, _ := TLSConfig(e.ca.CAFile, c, k)
	opRaw := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL()).SetClientID("op-raw").SetTLSConfig(tc))
	if tok := opRaw.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer opRaw.Disconnect(100)
	opRaw.Publish(CommandTopic("box-a"), 1, false, marker).WaitTimeout(5 * time.Second)
	waitFor(t, 5*time.Second, "marker on box-a's own topic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seenByA, "moh/box-a/cmd")
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seenByA, []string{"moh/box-a/cmd"}) {
		t.Fatalf("box-a's certificate received %v; only its own command topic is allowed", seenByA)
	}
}

func TestClientWithoutCertificateIsRefused(t *testing.T) {
	e := newEnv(t, testGroups)
	pem, err := os.ReadFile(e.ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL()).SetClientID("box-a").
		SetTLSConfig(&tls.Config{RootCAs: pool}).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	tok := cl.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect did not finish")
	}
	if tok.Error() == nil {
		cl.Disconnect(0)
		t.Fatal("a client without a certificate connected")
	}
	t.Logf("refused as expected: %v", tok.Error())

	// A certificate from another CA is refused as well.
	other, err := newOtherCA(t)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := TLSConfig(e.ca.CAFile, other[0], other[1])
	if err != nil {
		t.Fatal(err)
	}
	cl = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL()).SetClientID("box-a").
		SetTLSConfig(tc).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	tok = cl.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		cl.Disconnect(0)
		t.Fatal("a certificate from a foreign CA connected")
	}
}

// TestMain doubles as the agent subprocess for the last-will test, so
// that it can be SIGKILLed like a box losing power.
func TestMain(m *testing.M) {
	if os.Getenv("MOH_FLEET_TEST_AGENT") == "1" {
		runAgentSubprocess()
		return
	}
	os.Exit(m.Run())
}

func runAgentSubprocess() {
	a, err := NewAgent(AgentOptions{
		BrokerURL: os.Getenv("MOH_BROKER"), CAFile: os.Getenv("MOH_CA"),
		CertFile: os.Getenv("MOH_CERT"), KeyFile: os.Getenv("MOH_KEY"),
		DeviceID: os.Getenv("MOH_DEVICE"), Ops: newFakeOps(),
	})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	a.Run(context.Background())
	os.Exit(0)
}

func TestLastWillMarksKilledBoxOffline(t *testing.T) {
	e := newEnv(t, testGroups)
	child := e.startAgentChild(t, "box-c")
	op := e.operator(t)
	presence := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		docs, _ := op.Statuses(ctx, []string{"box-c"})
		return docs["box-c"].Presence
	}
	waitFor(t, 15*time.Second, "box-c online", func() bool { return presence() == Online })
	if err := child.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-child.Done()
	waitFor(t, 15*time.Second, "box-c offline by last will", func() bool { return presence() == Offline })
}

func TestAgentSurvivesBrokerRestart(t *testing.T) {
	e := newEnv(t, testGroups)
	ops := newFakeOps()
	a := e.startAgent(t, "box-a", ops, nil)
	e.broker.Stop()
	waitFor(t, 10*time.Second, "agent notices the broker is gone", func() bool { return !a.Connected() })
	if err := e.broker.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "agent reconnects", a.Connected)
	op := e.operator(t)
	// The broker kept nothing (persistence off): the status must have
	// been re-published, and commands must be subscribed again.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	docs, err := op.Statuses(ctx, []string{"box-a"})
	if err != nil || docs["box-a"].Presence != Online {
		t.Fatalf("status after restart: %+v, %v", docs, err)
	}
	r := send(t, op, Target{Group: "paris"}, Command{Op: OpPlay}, "box-a")
	if !r["box-a"].OK {
		t.Fatalf("command after restart: %+v", r)
	}
}

// A box that was offline when a command went out gets it through the
// client's resend, and acts on it once.
func TestResendReachesLateBox(t *testing.T) {
	e := newEnv(t, testGroups)
	c, k := e.certs(t, "operator")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	op, err := Dial(ctx, ClientOptions{BrokerURL: e.broker.URL(), CAFile: e.ca.CAFile, CertFile: c, KeyFile: k, Resend: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	type res struct {
		r   map[string]Reply
		err error
	}
	got := make(chan res, 1)
	go func() {
		r, err := op.Send(ctx, Target{Group: "paris"}, Command{Op: OpNext}, []string{"box-a"})
		got <- res{r, err}
	}()
	time.Sleep(300 * time.Millisecond) // the first publish finds nobody
	ops := newFakeOps()
	e.startAgent(t, "box-a", ops, nil)
	r := <-got
	if r.err != nil || !r.r["box-a"].OK {
		t.Fatalf("late box: %+v %v", r.r, r.err)
	}
	waitFor(t, 2*time.Second, "calls settle", func() bool { return len(ops.Calls()) == 1 })
	time.Sleep(500 * time.Millisecond) // further resends in flight must not act again
	if got := ops.Calls(); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("calls = %v", got)
	}
}

// A box that boots while the broker is down connects once it is up.
func TestAgentStartsBeforeBroker(t *testing.T) {
	e := newEnv(t, testGroups)
	e.broker.Stop()
	o := e.agentOptions(t, "box-b", newFakeOps())
	o.Groups, o.MaxReconnectInterval = testGroups["box-b"], time.Second
	a, err := NewAgent(o)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runAgent(a)
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "first attempts fail", func() bool { return !a.Connected() })
	if err := e.broker.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "agent connects after the broker starts", a.Connected)
	op := e.operator(t)
	if r := send(t, op, Target{Device: "box-b"}, Command{Op: OpStatus}, "box-b"); !r["box-b"].OK {
		t.Fatalf("reply %+v", r)
	}
}

// A change made on the box itself (the web page) reaches the retained
// status without any command.
func TestStatusPublishedOnLocalChange(t *testing.T) {
	e := newEnv(t, testGroups)
	ops := newFakeOps()
	e.startAgent(t, "box-a", ops, nil)
	op := e.operator(t)
	state := func() any {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		docs, _ := op.Statuses(ctx, []string{"box-a"})
		var s map[string]any
		json.Unmarshal(docs["box-a"].Status, &s)
		return s["volume"]
	}
	waitFor(t, 5*time.Second, "initial status", func() bool { return state() == float64(50) })
	ops.SetVolume(12)
	waitFor(t, 5*time.Second, "status shows the local change", func() bool { return state() == float64(12) })
}

func TestNewAgentRefusesBadOptions(t *testing.T) {
	good := AgentOptions{BrokerURL: "mqtts://127.0.0.1:8883", DeviceID: "box-a", Ops: newFakeOps(), TLSConfig: &tls.Config{}}
	cases := map[string]func(o *AgentOptions){
		"plain mqtt":      func(o *AgentOptions) { o.BrokerURL = "mqtt://127.0.0.1:1883" },
		"no host":         func(o *AgentOptions) { o.BrokerURL = "mqtts://" },
		"wildcard id":     func(o *AgentOptions) { o.DeviceID = "box/+" },
		"reserved id":     func(o *AgentOptions) { o.DeviceID = "group" },
		"bad group":       func(o *AgentOptions) { o.Groups = []string{"#"} },
		"no ops":          func(o *AgentOptions) { o.Ops = nil },
		"missing ca file": func(o *AgentOptions) { o.TLSConfig = nil; o.CAFile = "/nonexistent/ca.pem" },
		"cert without key": func(o *AgentOptions) {
			o.TLSConfig = nil
			o.CertFile = "/x.pem"
		},
	}
	if _, err := NewAgent(good); err != nil {
		t.Fatalf("good options refused: %v", err)
	}
	for name, mod := range cases {
		o := good
		mod(&o)
		if _, err := NewAgent(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestChangeKeyIgnoresTicking(t *testing.T) {
	a := changeKey([]byte(`{"state":"playing","position_ns":1,"level_dbfs":-20,"uptime_ns":5,"track":{"id":"x"},"volume":50,"disk":{"free_bytes":9}}`))
	b := changeKey([]byte(`{"state":"playing","position_ns":9,"level_dbfs":-21,"uptime_ns":6,"track":{"id":"x"},"volume":50,"disk":{"free_bytes":7}}`))
	if a != b {
		t.Errorf("position/level/uptime/free bytes changed the key")
	}
	for _, other := range []string{
		`{"state":"stopped","track":{"id":"x"},"volume":50}`,
		`{"state":"playing","track":{"id":"y"},"volume":50}`,
		`{"state":"playing","track":{"id":"x"},"volume":51}`,
		`{"state":"playing","track":{"id":"x"},"volume":50,"watchdog":{"recoveries":1}}`,
		`{"state":"playing","track":{"id":"x"},"volume":50,"health":{"state":"warning"}}`,
		`{"state":"playing","track":{"id":"x"},"volume":50,"disk":{"warning":true}}`,
		`{"state":"playing","track":{"id":"x"},"volume":50,"version":"1.2.3"}`,
	} {
		if changeKey([]byte(other)) == a {
			t.Errorf("%s: same key", other)
		}
	}
}

package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/fleet/fleettest"
	"github.com/mohproject/moh/internal/testkit"
)

// fakeClock is the agent's clock in tests that need expiry to pass at a
// moment the test chooses rather than after a sleep.
type fakeClock = testkit.Clock

// blockingOps holds every reorder until release is closed, which keeps
// the agent's workers busy for as long as a test needs a command to sit
// in the queue.
type blockingOps struct {
	*fakeOps
	entered chan struct{}
	release chan struct{}
}

func (b *blockingOps) Reorder(order []string) error {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeOps.Reorder(order)
}

// logRecorder keeps the messages and attributes the agent logs, so a
// test can check that a refusal is visible to the operator of the box.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) has(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// A command that was valid on arrival but expired while it waited for a
// worker must not run: a box busy with a long download must not play
// back stale orders afterwards.
func TestCommandExpiringInQueueIsNotRun(t *testing.T) {
	e := newEnv(t, testGroups)
	clock := testkit.NewClock(time.Now())
	ops := &blockingOps{fakeOps: newFakeOps(), entered: make(chan struct{}, workers), release: make(chan struct{})}
	logs := &logRecorder{}
	a := e.startAgent(t, "box-a", ops, func(o *AgentOptions) {
		o.Now = clock.Now
		o.Logger = slog.New(logs)
	})
	op := e.operator(t)

	type res struct {
		name string
		r    map[string]Reply
		err  error
	}
	got := make(chan res, workers+1)
	sendAsync := func(name string, cmd Command) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := op.Send(ctx, Target{Device: "box-a"}, cmd, []string{"box-a"})
			got <- res{name, r, err}
		}()
	}
	// Occupy every worker.
	for i := range workers {
		sendAsync("reorder", Command{ID: "busy-" + string(rune('0'+i)), Op: OpReorder, Expires: clock.Now().Add(time.Hour)})
	}
	for range workers {
		select {
		case <-ops.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("workers never took the blocking commands")
		}
	}
	// Valid when it arrives, so it is queued...
	sendAsync("stop", Command{ID: "stale-stop", Op: OpStop, Expires: clock.Now().Add(30 * time.Second)})
	waitFor(t, 10*time.Second, "stop queued behind the busy workers", func() bool { return len(a.cmds.queue) == 1 })
	// ...and expired by the time a worker is free.
	clock.Advance(36 * time.Second)
	close(ops.release)

	for range workers + 1 {
		r := <-got
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
		rep, ok := r.r["box-a"]
		if !ok {
			t.Fatalf("%s: no reply", r.name)
		}
		switch r.name {
		case "reorder":
			if !rep.OK {
				t.Errorf("reorder reply = %+v", rep)
			}
		case "stop":
			if rep.OK || rep.Error == nil || rep.Error.Code != CodeExpired {
				t.Errorf("stale stop reply = %+v, want code %s", rep, CodeExpired)
			}
		}
	}
	if slices.Contains(ops.Calls(), "stop") {
		t.Fatalf("the expired stop ran: calls = %v", ops.Calls())
	}
	if !logs.has("refused expired command", "id=stale-stop") {
		t.Errorf("no log line for the refusal; logged %q", logs.lines)
	}
}

// A command payload above MaxCommandBytes is refused unread, with a reply
// saying why; one above the broker's message_size_limit never reaches the
// box; one above its max_packet_size costs the sender its connection.
func TestOversizedCommandsAreRefused(t *testing.T) {
	if fleettest.MessageSizeLimit != BrokerMessageLimit || fleettest.MaxPacketSize != BrokerPacketLimit {
		t.Fatalf("test broker limits %d/%d differ from the documented %d/%d",
			fleettest.MessageSizeLimit, fleettest.MaxPacketSize, BrokerMessageLimit, BrokerPacketLimit)
	}
	e := newEnv(t, testGroups)
	conf, err := os.ReadFile(filepath.Join(e.broker.Dir, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nmessage_size_limit 1048576\n", "\nmax_packet_size 2097152\n"} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Fatalf("test broker config lacks %q:\n%s", strings.TrimSpace(want), conf)
		}
	}
	ops := newFakeOps()
	a := e.startAgent(t, "box-a", ops, nil)
	op := e.operator(t)
	raw := e.rawClient(t, "operator")

	var mu sync.Mutex
	replies := map[string]Reply{}
	onReply := func(_ mqtt.Client, m mqtt.Message) {
		var r Reply
		if json.Unmarshal(m.Payload(), &r) == nil {
			mu.Lock()
			replies[r.ID] = r
			mu.Unlock()
		}
	}
	if tok := raw.Subscribe("moh/box-a/reply/#", 1, onReply); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	reply := func(id string) (Reply, bool) {
		mu.Lock()
		defer mu.Unlock()
		r, ok := replies[id]
		return r, ok
	}
	// A stop padded with a long (made-up) playlist order; the id comes
	// first, as json.Marshal of a Command writes it.
	big := func(id string, size int) []byte {
		order := make([]string, 0, size/20)
		for n := 0; n < size; n += 20 {
			order = append(order, "0123456789abcdef")
		}
		b, _ := json.Marshal(Command{ID: id, Op: OpStop, Expires: time.Now().Add(time.Minute), Order: order})
		return b
	}
	publish := func(c mqtt.Client, payload []byte) {
		t.Helper()
		if tok := c.Publish(CommandTopic("box-a"), 1, false, payload); !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("publish timed out")
		}
	}

	// Over the agent's limit, under the broker's.
	p := big("big-agent", MaxCommandBytes+64<<10)
	publish(raw, p)
	waitFor(t, 10*time.Second, "reply to the oversized command", func() bool { _, ok := reply("big-agent"); return ok })
	r, _ := reply("big-agent")
	if r.OK || r.Error == nil || r.Error.Code != CodeTooLarge || !strings.Contains(r.Error.Message, "262144") {
		t.Fatalf("oversized command reply = %+v, want code %s naming the limit", r, CodeTooLarge)
	}

	// Over the broker's message_size_limit: dropped by the broker, the
	// sender stays connected.
	publish(raw, big("big-broker", 1536<<10))
	if !raw.IsConnectionOpen() {
		t.Fatal("a message over message_size_limit cost the sender its connection")
	}
	// Over max_packet_size: the broker hangs up on the sender before
	// taking the packet in.
	raw.Publish(CommandTopic("box-a"), 1, false, big("big-packet", 3<<20)).WaitTimeout(10 * time.Second)
	waitFor(t, 10*time.Second, "broker drops the client that sent an oversized packet", func() bool { return !raw.IsConnectionOpen() })

	// The box still answers, and once it has answered a later command it
	// has been given every earlier one it was going to get; the second's
	// handler may still be decoding, so allow it a moment.
	if r := send(t, op, Target{Device: "box-a"}, Command{Op: OpNext}, "box-a"); !r["box-a"].OK {
		t.Fatalf("box after the oversized commands: %+v", r)
	}
	time.Sleep(time.Second)
	if got := ops.Calls(); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("calls = %v; no oversized command may run", got)
	}
	for _, id := range []string{"big-broker", "big-packet"} {
		if r, ok := reply(id); ok {
			t.Errorf("%s reached the box (reply %+v); the broker must drop it", id, r)
		}
	}
	if !a.Connected() {
		t.Error("the box lost its link")
	}
}

// The id of an oversized command is found without decoding the payload,
// so the refusal can be answered.
func TestPeekID(t *testing.T) {
	long := strings.Repeat("x", 2*peekBytes)
	cases := []struct {
		payload, want string
	}{
		{`{"id":"abc","op":"stop","order":["` + long + `"]}`, "abc"},
		{`{"op":"stop","id":"abc","order":["` + long + `"]}`, "abc"},
		{`{"op":"stop","volume":{"id":"inner"},"id":"outer"}`, "outer"},
		{`{"order":["` + long + `"],"id":"late"}`, ""},
		{`{"id":"a/b"}`, ""},
		{`{"id":42}`, ""},
		{`[{"id":"abc"}]`, ""},
		{`not json`, ""},
		{``, ""},
	}
	for _, c := range cases {
		if got := peekID([]byte(c.payload)); got != c.want {
			t.Errorf("peekID(%.60q) = %q, want %q", c.payload, got, c.want)
		}
	}
}

// add_track promises https: a redirect from the https URL to plain http
// must not be followed (the sha256 would still be checked, but the box
// would have announced what it fetches, and from where, in clear text).
func TestAddTrackRefusesRedirectToHTTP(t *testing.T) {
	body := []byte("ID3 pretend this is a house-format mp3 " + time.Now().String())
	sum := sha256.Sum256(body)
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		w.Write(body)
	}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http.mp3":
			http.Redirect(w, r, plain.URL+"/hold.mp3", http.StatusFound)
		case "/moved.mp3":
			http.Redirect(w, r, "/hold.mp3", http.StatusMovedPermanently)
		case "/hold.mp3":
			w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	defer secure.Close()

	e := newEnv(t, testGroups)
	ops := newFakeOps()
	e.startAgent(t, "box-a", ops, func(o *AgentOptions) { o.HTTPClient = secure.Client() })
	op := e.operator(t)
	add := func(url, name string) Reply {
		return send(t, op, Target{Device: "box-a"}, Command{Op: OpAddTrack, URL: url, SHA256: hex.EncodeToString(sum[:]), Name: name}, "box-a")["box-a"]
	}

	r := add(secure.URL+"/to-http.mp3", "downgraded.mp3")
	if r.OK || r.Error == nil || r.Error.Code != CodeDownload || !strings.Contains(r.Error.Message, "redirect to http://") {
		t.Fatalf("https→http redirect: reply = %+v, want %s naming the refused redirect", r, CodeDownload)
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the plain http server was asked %d times", n)
	}
	// A redirect that stays on https is still followed.
	if r := add(secure.URL+"/moved.mp3", "moved.mp3"); !r.OK {
		t.Fatalf("https→https redirect: reply = %+v", r)
	}
	if got := ops.Calls(); !slices.Equal(got, []string{"add:moved.mp3"}) {
		t.Fatalf("library saw %v", got)
	}
}

// A reply the broker would drop (a tracks listing over its
// message_size_limit) is replaced by an error the operator does see,
// instead of a silent timeout.
func TestReplyOverBrokerLimitSaysSo(t *testing.T) {
	e := newEnv(t, testGroups)
	ops := newFakeOps()
	order := make([]string, 0, 150_000) // about 1.7 MB of JSON
	for i := range cap(order) {
		order = append(order, "0123456789abcdef"[:i%16+1])
	}
	if err := ops.Reorder(order); err != nil {
		t.Fatal(err)
	}
	e.startAgent(t, "box-a", ops, nil)
	op := e.operator(t)
	r, ok := send(t, op, Target{Device: "box-a"}, Command{Op: OpTracks}, "box-a")["box-a"]
	if !ok {
		t.Fatal("no reply: the broker dropped it")
	}
	if r.OK || r.Error == nil || r.Error.Code != CodeTooLarge || !strings.Contains(r.Error.Message, "message_size_limit") {
		t.Fatalf("oversized tracks reply: ok=%v error=%+v (%d bytes of result), want code %s", r.OK, r.Error, len(r.Result), CodeTooLarge)
	}
}

// The operator's side refuses a command no box would take, with the reason,
// instead of waiting out a timeout.
func TestClientRefusesOversizedCommand(t *testing.T) {
	e := newEnv(t, testGroups)
	op := e.operator(t)
	order := make([]string, MaxCommandBytes/16)
	for i := range order {
		order[i] = "0123456789abcdef"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := op.Send(ctx, Target{Device: "box-a"}, Command{Op: OpReorder, Order: order}, []string{"box-a"})
	if err == nil || !strings.Contains(err.Error(), "exceeds the fleet limit") {
		t.Fatalf("oversized command: err %v", err)
	}
}

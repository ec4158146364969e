package fleet

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/player"
)

// TestChangeKeyUnderruns: a new ALSA underrun is news the agent publishes
// at once; the disk trend drifting along is not.
func TestChangeKeyUnderruns(t *testing.T) {
	a := changeKey([]byte(`{"state":"playing","system":{"alsa_underruns":1,"disk_free_trend_bytes_per_hour":-5}}`))
	if b := changeKey([]byte(`{"state":"playing","system":{"alsa_underruns":1,"disk_free_trend_bytes_per_hour":-9}}`)); a != b {
		t.Errorf("a trend change is news: %s vs %s", a, b)
	}
	if b := changeKey([]byte(`{"state":"playing","system":{"alsa_underruns":2,"disk_free_trend_bytes_per_hour":-5}}`)); a == b {
		t.Error("a new underrun is no news")
	}
}

// TestPublishEventNeverBlocks: with no broker the queue fills, and
// further events are dropped and counted instead of waiting.
func TestPublishEventNeverBlocks(t *testing.T) {
	a := &Agent{events: make(chan player.Event, eventQueue)}
	for range eventQueue + 5 {
		a.PublishEvent(player.Event{Kind: "admin"})
	}
	if n := a.EventsDropped(); n != 5 {
		t.Fatalf("dropped %d, want 5", n)
	}
}

// TestEventsOnTheLink: through a real mosquitto with the documented ACL,
// a box's events reach the operator on moh/<id>/events, QoS 1 and not
// retained; a box cannot publish events in another box's name.
func TestEventsOnTheLink(t *testing.T) {
	e := newEnv(t, testGroups)
	b := e.startAgent(t, "box-b", newFakeOps(), nil)
	c, k := e.certs(t, "operator")
	tc, _ := TLSConfig(e.ca.CAFile, c, k)
	op := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.broker.URL()).SetClientID("op-events").SetTLSConfig(tc))
	if tok := op.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer op.Disconnect(100)
	var mu sync.Mutex
	var got []EventDoc
	var topics []string
	tok := op.Subscribe("moh/+/events", 1, func(_ mqtt.Client, m mqtt.Message) {
		var d EventDoc
		if err := json.Unmarshal(m.Payload(), &d); err != nil {
			t.Errorf("event %s: %v", m.Payload(), err)
		}
		mu.Lock()
		got, topics = append(got, d), append(topics, m.Topic())
		if m.Retained() || m.Qos() != 1 {
			t.Errorf("event retained %v qos %d, want a QoS 1 live message", m.Retained(), m.Qos())
		}
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// box-a forges an event for box-b, then sends one of its own.
	a := e.rawClient(t, "box-a")
	forged, _ := json.Marshal(EventDoc{Device: "box-b", Event: player.Event{Kind: "fault", Message: "forged"}})
	a.Publish(EventsTopic("box-b"), 1, false, forged).WaitTimeout(5 * time.Second)
	own, _ := json.Marshal(EventDoc{Device: "box-a", Event: player.Event{Kind: "admin", Message: "own"}})
	a.Publish(EventsTopic("box-a"), 1, false, own).WaitTimeout(5 * time.Second)
	b.PublishEvent(player.Event{Kind: "recovered", Fault: player.FaultStalled, Rung: "replay", RecoveryMS: 800, Message: "audio back"})

	waitFor(t, 10*time.Second, "both events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var sawB bool
	for i, d := range got {
		if d.Message == "forged" {
			t.Errorf("a forged event arrived on %s", topics[i])
		}
		if topics[i] == "moh/box-b/events" {
			sawB = true
			if d.Device != "box-b" || d.Kind != "recovered" || d.Fault != player.FaultStalled || d.Rung != "replay" || d.RecoveryMS != 800 || d.Time.IsZero() {
				t.Errorf("box-b's event = %+v", d)
			}
		}
	}
	if !sawB || len(got) != 2 {
		t.Fatalf("received %d events on %v", len(got), topics)
	}
}

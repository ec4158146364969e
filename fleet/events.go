package fleet

import (
	"encoding/json"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/player"
)

// EventsTopic is where a box publishes each event of its event log as it
// happens (QoS 1, not retained: an event is news, not a state, and the
// retained status already says how the box is now).
func EventsTopic(device string) string { return "moh/" + device + "/events" }

// EventDoc is one message on EventsTopic: the box's event (the one
// GET /api/v1/events lists) and the device that had it.
type EventDoc struct {
	Device string `json:"device"`
	player.Event
}

// eventQueue is how many events wait while the broker is away: the
// event log's own size, so a reconnecting box sends what its page shows.
const eventQueue = 200

// PublishEvent queues e for the broker and returns at once (the event
// log calls it from the player's goroutines). Events that meet a full
// queue, while the broker has been away for long, are dropped and
// counted (EventsDropped); the syslog forwarder and the box's own event
// log still have them.
func (a *Agent) PublishEvent(e player.Event) {
	select {
	case a.events <- e:
	default:
		a.eventsDropped.Add(1)
	}
}

// EventsDropped is how many events never reached the broker because the
// queue was full.
func (a *Agent) EventsDropped() uint64 { return a.eventsDropped.Load() }

// eventsWhileConnected is the queue to read from: none while the link is
// down, so events wait in it instead of being handed to a client that
// cannot send them.
func (a *Agent) eventsWhileConnected() <-chan player.Event {
	if a.connected.Load() {
		return a.events
	}
	return nil
}

func (a *Agent) publishEvent(c mqtt.Client, e player.Event) {
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	e.Time = e.Time.UTC()
	doc, err := json.Marshal(EventDoc{Device: a.o.DeviceID, Event: e})
	if err != nil {
		a.log.Error("marshal event", "err", err)
		return
	}
	tok := c.Publish(EventsTopic(a.o.DeviceID), 1, false, doc)
	go func() {
		if tok.WaitTimeout(15*time.Second) && tok.Error() != nil {
			a.log.Warn("publish event", "err", tok.Error())
		}
	}()
}

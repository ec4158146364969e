package exporter

import (
	"bufio"
	"encoding/json"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/fleet"
)

// eventsFilter matches every box's event stream (fleet.EventsTopic).
const eventsFilter = "moh/+/events"

var famEvents = family{"moh_fleet_events_total", "counter",
	"Events each box published (watchdog faults and recoveries, admin changes, library, security…) since the exporter started, by kind."}

// maxKinds bounds the kinds counted per box: the kind comes from the box,
// and a confused one must not grow the exporter's series without end.
// moh has fewer than ten; the rest count as "other".
const maxKinds = 32

// eventCounts is how many events of each kind each box sent.
type eventCounts map[string]map[string]uint64

// subscribeEvents asks for every box's events. QoS 1: unlike a status, a
// lost event is never sent again, and a counter that misses some
// undercounts for good. A refusal (an ACL from before events) leaves the
// status metrics working and says what to add.
func (e *Exporter) subscribeEvents(c mqtt.Client) {
	tok := c.Subscribe(eventsFilter, 1, e.onEvent)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		e.log.Error("subscribe to events failed; moh_fleet_events_total stays still until the next connection", "err", tok.Error())
		return
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[eventsFilter] == 0x80 {
		e.log.Error("broker refused the events subscription (the exporter's user needs 'topic read moh/+/events' in the ACL)")
	}
}

func (e *Exporter) onEvent(_ mqtt.Client, m mqtt.Message) {
	device, ok := e.received(m)
	if !ok {
		return
	}
	var d fleet.EventDoc
	if err := json.Unmarshal(m.Payload(), &d); err != nil || d.Kind == "" {
		e.bad.Add(1)
		return
	}
	e.CountEvent(device, d.Kind)
}

// CountEvent records one event of kind from device, as if it came from
// the broker.
func (e *Exporter) CountEvent(device, kind string) {
	if len(kind) > 32 || fleet.ValidName(kind) != nil {
		kind = "other"
	}
	e.evMu.Lock()
	defer e.evMu.Unlock()
	if e.events == nil {
		e.events = eventCounts{}
	}
	k := e.events[device]
	if k == nil {
		k = map[string]uint64{}
		e.events[device] = k
	}
	if _, known := k[kind]; !known && len(k) >= maxKinds {
		kind = "other"
	}
	k[kind]++
}

// forgetEvents drops a decommissioned box's counts with its status.
func (e *Exporter) forgetEvents(device string) {
	e.evMu.Lock()
	delete(e.events, device)
	e.evMu.Unlock()
}

// writeEvents renders the counts, sorted so a scrape reads the same
// order every time. The copy is made under the lock; the writing is not.
func (e *Exporter) writeEvents(bw *bufio.Writer, buf []byte) {
	type row struct {
		device, kind string
		n            uint64
	}
	e.evMu.Lock()
	rows := make([]row, 0, len(e.events)*2)
	for dev, kinds := range e.events {
		for k, n := range kinds {
			rows = append(rows, row{dev, k, n})
		}
	}
	e.evMu.Unlock()
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.device, b.device); c != 0 {
			return c
		}
		return strings.Compare(a.kind, b.kind)
	})
	header(bw, famEvents)
	for _, r := range rows {
		bw.Write(sample(buf[:0], famEvents.name, labelSet("device", r.device, "kind", r.kind), "", float64(r.n)))
	}
}

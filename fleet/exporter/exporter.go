// Package exporter is the fleet's Prometheus exporter: it listens on the
// broker to every box's retained status document and serves one set of
// metrics for all of them, so a monitoring team sees boxes behind NAT
// that Prometheus could never scrape. A scrape never asks a box anything:
// it is rendered from the latest document each box published, so its
// cost does not depend on how many boxes answer, or how slowly.
package exporter

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mohproject/moh/fleet"
)

// statusFilter matches every box's retained status (fleet.StatusTopic).
const statusFilter = "moh/+/status"

// Options configure an Exporter.
type Options struct {
	// BrokerURL is the broker's mqtts:// address.
	BrokerURL string
	// CAFile, CertFile, KeyFile: the fleet CA and the exporter's client
	// certificate (its CN is its broker user; it needs only
	// "topic read moh/+/status"). TLSConfig, if set, is used instead.
	CAFile, CertFile, KeyFile string
	TLSConfig                 *tls.Config
	// ClientID defaults to "moh-exporter-" and a random suffix.
	ClientID string
	Logger   *slog.Logger
	// Now is the clock for staleness; nil means time.Now.
	Now func() time.Time
	// StaleAfter is how long a box that says it is online may stay
	// unheard before it counts as down (default 3 min: a box re-publishes
	// its status at least every 60 s, so three publishes were lost). The
	// broker's last will covers a box that vanished; this covers a broker
	// that kept a dead link open, or a box whose agent hung.
	StaleAfter time.Duration
	// MaxReconnectInterval caps the reconnect backoff (default 30 s).
	MaxReconnectInterval time.Duration
}

// Exporter keeps the latest status of every box and renders it as
// Prometheus metrics (see WriteMetrics).
type Exporter struct {
	o   Options
	tls *tls.Config
	log *slog.Logger

	mu    sync.RWMutex
	boxes map[string]*box

	connected atomic.Bool
	// subscribed is when the current subscription was asked for (unix
	// ns): live messages received after it are newer than any retained
	// document it replays.
	subscribed atomic.Int64
	messages   atomic.Uint64
	bad        atomic.Uint64
	scrapeNS   atomic.Int64
	self       *prometheus.Registry

	evMu   sync.Mutex
	events eventCounts // events.go
}

// New checks the options; Run connects.
func New(o Options) (*Exporter, error) {
	u, err := url.Parse(o.BrokerURL)
	if err != nil {
		return nil, fmt.Errorf("broker url: %w", err)
	}
	switch u.Scheme {
	case "mqtts", "ssl", "tls", "tcps", "mqtt+ssl", "wss":
	default:
		// The boxes' status is what an operator acts on: it must come
		// from a broker that proved who it is.
		return nil, fmt.Errorf("broker url %q: want mqtts://host:port (TLS is required)", o.BrokerURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("broker url %q: no host", o.BrokerURL)
	}
	tc := o.TLSConfig
	if tc == nil {
		if tc, err = fleet.TLSConfig(o.CAFile, o.CertFile, o.KeyFile); err != nil {
			return nil, err
		}
	}
	if o.ClientID == "" {
		o.ClientID = "moh-exporter-" + fleet.NewRequestID()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 3 * time.Minute
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = 30 * time.Second
	}
	self := prometheus.NewRegistry()
	self.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return &Exporter{o: o, tls: tc, log: o.Logger.With("component", "exporter"), boxes: map[string]*box{}, self: self}, nil
}

// Connected reports whether the broker link is up.
func (e *Exporter) Connected() bool { return e.connected.Load() }

// Boxes is how many boxes the exporter knows.
func (e *Exporter) Boxes() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.boxes)
}

// Run keeps the subscription up until ctx is done, reconnecting with
// backoff: an exporter that gives up would look to Prometheus like a
// fleet where nothing changes. The clean session forgets the
// subscription, so every connection subscribes again, and the broker then
// sends every retained status afresh.
func (e *Exporter) Run(ctx context.Context) error {
	opts := mqtt.NewClientOptions().
		AddBroker(e.o.BrokerURL).
		SetClientID(e.o.ClientID).
		SetTLSConfig(e.tls).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(15 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(e.o.MaxReconnectInterval).
		SetOnConnectHandler(e.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			e.connected.Store(false)
			e.log.Warn("broker connection lost; reconnecting", "err", err)
		})
	e.log.Info("fleet exporter starting", "broker", e.o.BrokerURL)
	c := fleet.ConnectFirst(ctx, func() mqtt.Client { return mqtt.NewClient(opts) }, time.Second, e.o.MaxReconnectInterval, e.log)
	if c == nil {
		return nil
	}
	<-ctx.Done()
	c.Disconnect(250)
	e.connected.Store(false)
	return nil
}

func (e *Exporter) onConnect(c mqtt.Client) {
	e.log.Info("connected to broker; subscribing to every box's status")
	wait := time.Second
	for {
		// QoS 0: a status is a latest value, published again at least
		// every 60 s and replayed from the retained store on every
		// resubscription, so a lost one costs nothing; QoS 1 would cost
		// a PUBACK per box and an in-flight window on the flood of
		// retained documents each subscription brings.
		e.subscribed.Store(e.o.Now().UnixNano())
		tok := c.Subscribe(statusFilter, 0, e.onMessage)
		if tok.WaitTimeout(15*time.Second) && tok.Error() == nil {
			if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[statusFilter] == 0x80 {
				// Connected but deaf: say so loudly, and leave the
				// connected metric at 0 so an alert catches it.
				e.log.Error("broker refused the status subscription (the exporter's user needs 'topic read moh/+/status' in the ACL)")
				return
			}
			e.subscribeEvents(c)
			e.connected.Store(true)
			return
		}
		if !c.IsConnectionOpen() {
			return // the next connection subscribes again
		}
		e.log.Error("subscribe to status failed; retrying", "err", tok.Error(), "in", wait)
		time.Sleep(wait)
		wait = min(2*wait, 30*time.Second)
	}
}

func (e *Exporter) onMessage(_ mqtt.Client, m mqtt.Message) {
	device, ok := e.received(m)
	if !ok {
		return
	}
	if len(m.Payload()) == 0 {
		// An empty retained message deletes a box from the broker:
		// decommissioned, so it leaves the metrics too.
		e.mu.Lock()
		delete(e.boxes, device)
		e.mu.Unlock()
		e.forgetEvents(device)
		return
	}
	var d fleet.StatusDoc
	if err := json.Unmarshal(m.Payload(), &d); err != nil {
		e.bad.Add(1)
		e.log.Warn("undecodable status document", "device", device, "err", err)
		return
	}
	e.Observe(device, d, m.Retained())
}

// received counts a message from the broker and names the device it is
// about. The device is the topic's (moh/<device>/status or /events),
// never the payload's: the broker's ACL lets only that device write
// there. Any other topic is counted bad and ok is false.
func (e *Exporter) received(m mqtt.Message) (device string, ok bool) {
	e.messages.Add(1)
	parts := strings.Split(m.Topic(), "/")
	if len(parts) != 3 || fleet.ValidName(parts[1]) != nil {
		e.bad.Add(1)
		return "", false
	}
	return parts[1], true
}

// Observe records a status document of device, as if it came from the
// broker; retained says the broker replayed it on subscription (then the
// document's own time says when the box was last heard, not the moment
// it arrived).
func (e *Exporter) Observe(device string, d fleet.StatusDoc, retained bool) {
	now := e.o.Now()
	heard := now
	if retained && !d.Time.IsZero() && d.Time.Before(now) {
		heard = d.Time
	}
	e.mu.RLock()
	prev := e.boxes[device]
	e.mu.RUnlock()
	b, err := newBox(device, d, heard, prev)
	b.received, b.retained = now, retained
	if err != nil {
		e.bad.Add(1)
		e.log.Warn("odd status document; showing what decoded", "device", device, "err", err)
	}
	e.mu.Lock()
	// A retained document is the broker's current truth for the box —
	// even a last will older than the status we had, when the box died
	// while the exporter was away — unless a live message of this same
	// subscription overtook it (paho may hand messages over out of
	// order).
	cur := e.boxes[device]
	overtaken := retained && cur != nil && !cur.retained && cur.received.UnixNano() >= e.subscribed.Load()
	if !overtaken {
		e.boxes[device] = b
	}
	e.mu.Unlock()
}

package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ClientOptions configure the operator's side of the link.
type ClientOptions struct {
	BrokerURL                 string
	CAFile, CertFile, KeyFile string
	// TLSConfig, if set, is used instead of the three files.
	TLSConfig *tls.Config
	// ClientID defaults to "mohctl-" and a random suffix.
	ClientID string
	// Now is the clock that stamps command expiry; nil means time.Now.
	Now func() time.Time
	// Resend is how long Send waits for missing replies before publishing
	// the same command again to each silent box's own topic (default
	// 5 s; negative: never). Safe because a box acts on a request id only
	// once; it recovers commands lost while a box was reconnecting.
	Resend time.Duration
}

// Client sends commands to boxes through the broker and collects their
// replies and retained status. It is what `mohctl --via` uses.
type Client struct {
	c      mqtt.Client
	now    func() time.Time
	resend time.Duration
}

// Dial connects to the broker once (no retry: an operator wants to know
// now that the broker is unreachable).
func Dial(ctx context.Context, o ClientOptions) (*Client, error) {
	if err := checkBrokerURL(o.BrokerURL); err != nil {
		return nil, err
	}
	tc := o.TLSConfig
	if tc == nil {
		var err error
		if tc, err = TLSConfig(o.CAFile, o.CertFile, o.KeyFile); err != nil {
			return nil, err
		}
	}
	if o.ClientID == "" {
		o.ClientID = "mohctl-" + NewRequestID()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	opts := mqtt.NewClientOptions().
		AddBroker(o.BrokerURL).
		SetClientID(o.ClientID).
		SetTLSConfig(tc).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	if err := wait(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("connect to broker %s: %w", o.BrokerURL, err)
	}
	if o.Resend == 0 {
		o.Resend = 5 * time.Second
	}
	return &Client{c: c, now: o.Now, resend: o.Resend}, nil
}

// Close disconnects.
func (c *Client) Close() { c.c.Disconnect(250) }

func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewRequestID returns a random id usable as a request id or client id.
func NewRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Target is where a command is published: one device or one group.
type Target struct {
	Device string
	Group  string
}

func (t Target) topic() (string, error) {
	switch {
	case t.Device != "" && t.Group == "":
		return CommandTopic(t.Device), ValidName(t.Device)
	case t.Group != "" && t.Device == "":
		return GroupTopic(t.Group), ValidName(t.Group)
	}
	return "", errors.New("target needs exactly one of device or group")
}

// Send publishes cmd to target and collects replies until every device in
// expect has answered or ctx is done. It fills in cmd.ID and, if unset,
// cmd.Expires (from ctx's deadline, else one minute). The map holds the
// replies that came; the caller reports the missing ones per box.
func (c *Client) Send(ctx context.Context, target Target, cmd Command, expect []string) (map[string]Reply, error) {
	topic, err := target.topic()
	if err != nil {
		return nil, err
	}
	if cmd.ID == "" {
		cmd.ID = NewRequestID()
	}
	if cmd.Expires.IsZero() {
		cmd.Expires = c.now().Add(time.Minute)
		if d, ok := ctx.Deadline(); ok {
			cmd.Expires = d
		}
	}
	payload, _ := json.Marshal(cmd)
	if len(payload) > MaxCommandBytes {
		// A box would refuse it, or the broker drop it unseen.
		return nil, fmt.Errorf("command of %d bytes exceeds the fleet limit of %d bytes", len(payload), MaxCommandBytes)
	}
	return collect(ctx, c.c, collectOptions[Reply]{
		what:   "replies",
		filter: "moh/+/reply/" + cmd.ID,
		want:   expect,
		parse: func(dev string, payload []byte) (Reply, bool) {
			var r Reply
			if json.Unmarshal(payload, &r) != nil || r.ID != cmd.ID {
				return r, false
			}
			r.Device = dev
			return r, true
		},
		// Subscribed first, so no reply can come before we listen.
		start: func() error {
			if err := wait(ctx, c.c.Publish(topic, 1, false, payload)); err != nil {
				return fmt.Errorf("publish command: %w", err)
			}
			return nil
		},
		retry: c.resend,
		missing: func(devs []string) {
			for _, d := range devs {
				c.c.Publish(CommandTopic(d), 1, false, payload)
			}
		},
	})
}

// statusSettle is how long Statuses waits after the last retained
// document before deciding the missing boxes have none: the broker sends
// all retained messages right after the subscription.
const statusSettle = time.Second

// Statuses collects the retained status documents of devices until all
// have been seen, no more arrive for a second, or ctx is done. A box that
// never connected has none.
func (c *Client) Statuses(ctx context.Context, devices []string) (map[string]StatusDoc, error) {
	return collect(ctx, c.c, collectOptions[StatusDoc]{
		what:   "status",
		filter: "moh/+/status",
		want:   devices,
		parse: func(dev string, payload []byte) (StatusDoc, bool) {
			var d StatusDoc
			if json.Unmarshal(payload, &d) != nil {
				return d, false
			}
			d.Device = dev
			return d, true
		},
		quiet: statusSettle,
	})
}

// collectOptions describe one collection of per-device messages.
type collectOptions[T any] struct {
	what   string // for errors: "replies", "status"
	filter string // a topic filter whose second level is the device id
	want   []string
	// parse decodes one message from dev; false ignores it. The device
	// is taken from the topic, never the payload: the broker's ACL
	// guarantees only that device can write under moh/<device>/.
	parse func(dev string, payload []byte) (T, bool)
	// start, if set, runs once the subscription is in place.
	start func() error
	// quiet > 0 ends the collection once no message parsed for that long.
	quiet time.Duration
	// retry > 0 calls missing every retry with the devices not yet heard.
	retry   time.Duration
	missing func(devs []string)
}

// collect subscribes to o.filter and keeps the latest message of each
// wanted device until all have answered, ctx is done, or (with o.quiet)
// the broker has gone quiet. It returns what came; the caller reports the
// devices missing from the map.
func collect[T any](ctx context.Context, cl mqtt.Client, o collectOptions[T]) (map[string]T, error) {
	want := make(map[string]bool, len(o.want))
	for _, d := range o.want {
		want[d] = true
	}
	var (
		mu     sync.Mutex
		got    = make(map[string]T, len(want))
		done   = make(chan struct{})
		closed bool
		last   time.Time
	)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		parts := strings.SplitN(m.Topic(), "/", 3)
		if len(parts) < 3 {
			return
		}
		v, ok := o.parse(parts[1], m.Payload())
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		if !want[parts[1]] {
			return
		}
		got[parts[1]] = v
		if len(got) == len(want) && !closed {
			closed = true
			close(done)
		}
	}
	if err := wait(ctx, cl.Subscribe(o.filter, 1, handler)); err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", o.what, err)
	}
	defer cl.Unsubscribe(o.filter)
	mu.Lock()
	last = time.Now()
	mu.Unlock()
	if o.start != nil {
		if err := o.start(); err != nil {
			return nil, err
		}
	}
	var quietTick, retryTick <-chan time.Time
	if o.quiet > 0 {
		t := time.NewTicker(o.quiet / 10)
		defer t.Stop()
		quietTick = t.C
	}
	if o.retry > 0 && o.missing != nil {
		t := time.NewTicker(o.retry)
		defer t.Stop()
		retryTick = t.C
	}
wait:
	for len(want) > 0 {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			break wait
		case <-quietTick:
			mu.Lock()
			quiet := time.Since(last) > o.quiet
			mu.Unlock()
			if quiet {
				break wait
			}
		case <-retryTick:
			mu.Lock()
			var missing []string
			for d := range want {
				if _, ok := got[d]; !ok {
					missing = append(missing, d)
				}
			}
			mu.Unlock()
			o.missing(missing)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return maps.Clone(got), nil
}

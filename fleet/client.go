package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	want := make(map[string]bool, len(expect))
	for _, d := range expect {
		want[d] = true
	}
	var (
		mu      sync.Mutex
		replies = make(map[string]Reply, len(expect))
		done    = make(chan struct{})
		closed  bool
	)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		var r Reply
		if json.Unmarshal(m.Payload(), &r) != nil || r.ID != cmd.ID {
			return
		}
		// Trust the topic, not the payload: the ACL guarantees only
		// that device can write under moh/<device>/.
		dev := strings.SplitN(m.Topic(), "/", 3)[1]
		r.Device = dev
		mu.Lock()
		defer mu.Unlock()
		if !want[dev] {
			return
		}
		replies[dev] = r
		if len(replies) == len(want) && !closed {
			closed = true
			close(done)
		}
	}
	payload, _ := json.Marshal(cmd)
	if len(payload) > MaxCommandBytes {
		// A box would refuse it, or the broker drop it unseen.
		return nil, fmt.Errorf("command of %d bytes exceeds the fleet limit of %d bytes", len(payload), MaxCommandBytes)
	}
	replyFilter := "moh/+/reply/" + cmd.ID
	if err := wait(ctx, c.c.Subscribe(replyFilter, 1, handler)); err != nil {
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	defer c.c.Unsubscribe(replyFilter)
	if err := wait(ctx, c.c.Publish(topic, 1, false, payload)); err != nil {
		return nil, fmt.Errorf("publish command: %w", err)
	}
	var tick <-chan time.Time
	if c.resend > 0 {
		t := time.NewTicker(c.resend)
		defer t.Stop()
		tick = t.C
	}
wait:
	for len(want) > 0 {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick:
			mu.Lock()
			var missing []string
			for d := range want {
				if _, ok := replies[d]; !ok {
					missing = append(missing, d)
				}
			}
			mu.Unlock()
			for _, d := range missing {
				c.c.Publish(CommandTopic(d), 1, false, payload)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]Reply, len(replies))
	for k, v := range replies {
		out[k] = v
	}
	return out, nil
}

// statusSettle is how long Statuses waits after the last retained
// document before deciding the missing boxes have none: the broker sends
// all retained messages right after the subscription.
const statusSettle = time.Second

// Statuses collects the retained status documents of devices until all
// have been seen, no more arrive for a second, or ctx is done. A box that
// never connected has none.
func (c *Client) Statuses(ctx context.Context, devices []string) (map[string]StatusDoc, error) {
	want := make(map[string]bool, len(devices))
	for _, d := range devices {
		want[d] = true
	}
	var (
		mu     sync.Mutex
		docs   = make(map[string]StatusDoc, len(devices))
		done   = make(chan struct{})
		closed bool
		last   time.Time
	)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		var d StatusDoc
		if json.Unmarshal(m.Payload(), &d) != nil {
			return
		}
		dev := strings.SplitN(m.Topic(), "/", 3)[1]
		d.Device = dev
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		if !want[dev] {
			return
		}
		docs[dev] = d
		if len(docs) == len(want) && !closed {
			closed = true
			close(done)
		}
	}
	filter := "moh/+/status"
	if err := wait(ctx, c.c.Subscribe(filter, 1, handler)); err != nil {
		return nil, fmt.Errorf("subscribe to status: %w", err)
	}
	defer c.c.Unsubscribe(filter)
	mu.Lock()
	last = time.Now()
	mu.Unlock()
	tick := time.NewTicker(statusSettle / 10)
	defer tick.Stop()
wait:
	for len(want) > 0 {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
			mu.Lock()
			quiet := time.Since(last) > statusSettle
			mu.Unlock()
			if quiet {
				break wait
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]StatusDoc, len(docs))
	for k, v := range docs {
		out[k] = v
	}
	return out, nil
}

package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/player"
)

// AgentOptions configure the agent inside mohd.
type AgentOptions struct {
	// BrokerURL is mqtts://host:port (ssl:// and tls:// work too).
	BrokerURL string
	// CAFile is the company CA that signed the broker's certificate;
	// CertFile and KeyFile are this box's client certificate, whose CN
	// must equal DeviceID (the broker's ACL keys on it).
	CAFile, CertFile, KeyFile string
	// TLSConfig, if set, is used instead of the three files (tests).
	TLSConfig *tls.Config
	DeviceID  string
	Groups    []string
	Ops       Ops
	Logger    *slog.Logger
	// Now is the clock for command expiry; nil means time.Now.
	Now func() time.Time
	// StatusInterval is how often the status is re-published even when
	// nothing changed (default 60 s); ChangeInterval how often it is
	// checked for changes (default 1 s).
	StatusInterval, ChangeInterval time.Duration
	// HTTPClient downloads add_track URLs. The default trusts the system
	// roots and CAFile (the fleet CA may sign the file server too), with
	// a 10 min timeout.
	HTTPClient *http.Client
	// TempDir receives downloads before they are verified (default
	// os.TempDir()); put it on the data disk, not tmpfs, for big files.
	TempDir string
	// MaxTrackBytes caps a download (default 200 MiB).
	MaxTrackBytes int64
	// MaxReconnectInterval caps the reconnect backoff (default 60 s).
	MaxReconnectInterval time.Duration
	// CertDir (DATA/fleet) holds the pairs certificate rotation makes;
	// a pair there takes precedence over CertFile/KeyFile. Empty: no
	// rotation. CertConfirmTimeout is how long a new pair has to
	// connect before the box goes back to the old one (default 45 s).
	CertDir            string
	CertConfirmTimeout time.Duration
	// InstallHTTPS serves the HTTPS pair in the given file from the next
	// handshake; CurrentHTTPS is the certificate served now. Both nil:
	// the HTTPS certificate is not rotated over the fleet link.
	InstallHTTPS func(pairFile string) error
	CurrentHTTPS func() (*x509.Certificate, error)
}

// Agent is mohd's MQTT link to the fleet operator. It only ever connects
// out, so a box behind NAT needs no open port.
type Agent struct {
	o    AgentOptions
	tls  *tls.Config
	log  *slog.Logger
	now  func() time.Time
	cmds *commander
	rot  *rotator // nil: the client pair is not rotated

	connected atomic.Bool

	// events waits for the broker (events.go).
	events        chan player.Event
	eventsDropped atomic.Uint64

	mu         sync.Mutex
	lastKey    string
	lastPublic time.Time
}

// NewAgent checks the options and loads the certificates; it does not
// connect.
func NewAgent(o AgentOptions) (*Agent, error) {
	if err := checkBrokerURL(o.BrokerURL); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if err := ValidName(o.DeviceID); err != nil {
		return nil, fmt.Errorf("fleet: device id: %w", err)
	}
	for _, g := range o.Groups {
		if err := ValidName(g); err != nil {
			return nil, fmt.Errorf("fleet: group: %w", err)
		}
	}
	if o.Ops == nil {
		return nil, errors.New("fleet: ops are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 60 * time.Second
	}
	if o.ChangeInterval <= 0 {
		o.ChangeInterval = time.Second
	}
	if o.HTTPClient == nil {
		hc, err := fetchClient(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: download client: %w", err)
		}
		o.HTTPClient = hc
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MaxTrackBytes <= 0 {
		o.MaxTrackBytes = 200 << 20
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = 60 * time.Second
	}
	// A rotated pair in the data dir wins over the configured files,
	// which may be the first pair on a read-only /etc.
	certFile, keyFile := ActivePair(o.CertDir, CertKindFleet, o.CertFile, o.KeyFile)
	tc := o.TLSConfig
	if tc == nil {
		var err error
		if tc, err = TLSConfig(o.CAFile, certFile, keyFile); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
	}
	a := &Agent{o: o, tls: tc, log: o.Logger.With("component", "fleet", "device", o.DeviceID), now: o.Now}
	a.events = make(chan player.Event, eventQueue)
	if o.CertDir != "" && o.TLSConfig == nil {
		if err := a.enableRotation(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
	}
	a.cmds = newCommander(a)
	return a, nil
}

// Connected reports whether the broker link is up (for /metrics).
func (a *Agent) Connected() bool { return a.connected.Load() }

// Run keeps the link up until ctx is done: it connects (retrying with
// backoff forever), re-subscribes and re-publishes the retained status on
// every (re)connection, answers commands and publishes status changes. On
// return it marks the box offline itself, since a clean disconnect does
// not fire the last will.
func (a *Agent) Run(ctx context.Context) error {
	opts := mqtt.NewClientOptions().
		AddBroker(a.o.BrokerURL).
		SetClientID(a.o.DeviceID).
		SetTLSConfig(a.tls).
		SetCleanSession(true).
		SetStore(noStore{}).
		SetOrderMatters(false).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(15 * time.Second).
		SetWriteTimeout(15 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(a.o.MaxReconnectInterval).
		SetOnConnectHandler(a.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			a.connected.Store(false)
			a.log.Warn("broker connection lost; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(_ mqtt.Client, o *mqtt.ClientOptions) {
			a.log.Info("reconnecting to broker")
			// paho would resend the first connection's will; each
			// connection carries its own start time instead (see will).
			o.WillPayload = a.will()
		}).
		SetConnectionAttemptHandler(func(broker *url.URL, tc *tls.Config) *tls.Config {
			a.log.Debug("connecting to broker", "broker", broker.Host)
			return tc
		})
	if dial := a.rot.dialer(); dial != nil {
		opts.SetCustomOpenConnectionFn(dial) // so a rotation can force a new handshake
	}
	go a.rot.watchStart(ctx)
	a.log.Info("fleet agent starting", "broker", a.o.BrokerURL, "groups", a.o.Groups)
	c := a.connectFirst(ctx, opts)
	if c == nil {
		return nil // stopped before the broker was ever reached
	}

	var wg sync.WaitGroup
	workCtx, stopWork := context.WithCancel(ctx)
	a.cmds.start(workCtx, &wg)

	tick := time.NewTicker(a.o.ChangeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopWork()
			wg.Wait()
			if c.IsConnectionOpen() {
				a.publishOffline(c)
			}
			c.Disconnect(500)
			a.connected.Store(false)
			return nil
		case <-tick.C:
			if a.connected.Load() {
				a.publishStatus(c, false)
			}
		case e := <-a.eventsWhileConnected():
			a.publishEvent(c, e)
		}
	}
}

// will is the last will of a connection made now: offline, with the
// moment the connection began. The broker publishes it verbatim when the
// box vanishes (power cut, crash, network loss), so it cannot carry the
// moment of the loss; the start of the connection is the latest time the
// box is known for certain to have been up, and setting it again on every
// reconnection keeps it from going stale. (A clean shutdown publishes its
// own offline document with the time it stopped: publishOffline.)
func (a *Agent) will() []byte {
	b, _ := json.Marshal(StatusDoc{Device: a.o.DeviceID, Presence: Offline, Groups: a.o.Groups, Time: a.now().UTC()})
	return b
}

// connectFirst makes the first connection (see ConnectFirst) with a new
// client for each attempt, because paho fixes the will when the client is
// made, and the will must carry the time of the attempt that succeeded: a
// box that booted while the broker was down for an hour must not claim it
// was last up at boot. Later reconnections are paho's
// (SetReconnectingHandler).
func (a *Agent) connectFirst(ctx context.Context, opts *mqtt.ClientOptions) mqtt.Client {
	return ConnectFirst(ctx, func() mqtt.Client {
		opts.SetBinaryWill(StatusTopic(a.o.DeviceID), a.will(), 1, true)
		return mqtt.NewClient(opts)
	}, 2*time.Second, a.o.MaxReconnectInterval, a.log)
}

// onConnect runs on every (re)connection: the clean session forgets
// subscriptions, and the retained status must say online again.
func (a *Agent) onConnect(c mqtt.Client) {
	a.log.Info("connected to broker")
	filters := map[string]byte{CommandTopic(a.o.DeviceID): 1}
	for _, g := range a.o.Groups {
		filters[GroupTopic(g)] = 1
	}
	// A link that cannot hear commands is no link: retry the
	// subscription with backoff for as long as this connection lasts.
	// (Disconnect would end paho's auto-reconnect for good.)
	wait := time.Second
	for {
		tok := c.SubscribeMultiple(filters, a.cmds.onMessage)
		ok := tok.WaitTimeout(15*time.Second) && tok.Error() == nil
		if ok {
			if st, isSub := tok.(*mqtt.SubscribeToken); isSub {
				for topic, code := range st.Result() {
					if code == 0x80 {
						a.log.Error("broker refused subscription (check the ACL)", "topic", topic)
					}
				}
			}
			break
		}
		if !c.IsConnectionOpen() {
			return // the next connection runs onConnect again
		}
		a.log.Error("subscribe to command topics failed; retrying", "err", tok.Error(), "in", wait)
		time.Sleep(wait)
		wait = min(2*wait, 30*time.Second)
	}
	a.connected.Store(true)
	a.rot.connected()
	a.publishStatus(c, true)
}

// publishStatus publishes the retained status (the box's status.Doc in
// its envelope) when it changed in a way an operator cares about, when
// StatusInterval passed, or when forced.
func (a *Agent) publishStatus(c mqtt.Client, force bool) {
	raw, err := json.Marshal(a.o.Ops.Status())
	if err != nil {
		a.log.Error("marshal status", "err", err)
		return
	}
	key := changeKey(raw)
	now := a.now()
	a.mu.Lock()
	if !force && key == a.lastKey && now.Sub(a.lastPublic) < a.o.StatusInterval {
		a.mu.Unlock()
		return
	}
	a.lastKey, a.lastPublic = key, now
	a.mu.Unlock()
	doc, _ := json.Marshal(StatusDoc{Device: a.o.DeviceID, Presence: Online, Groups: a.o.Groups, Time: now.UTC(), Status: raw})
	tok := c.Publish(StatusTopic(a.o.DeviceID), 1, true, doc)
	go func() {
		if tok.WaitTimeout(15*time.Second) && tok.Error() != nil {
			a.log.Warn("publish status", "err", tok.Error())
		}
	}()
}

func (a *Agent) publishOffline(c mqtt.Client) {
	doc, _ := json.Marshal(StatusDoc{Device: a.o.DeviceID, Presence: Offline, Groups: a.o.Groups, Time: a.now().UTC()})
	tok := c.Publish(StatusTopic(a.o.DeviceID), 1, true, doc)
	tok.WaitTimeout(2 * time.Second)
}

// changeKey reduces a status to the fields whose change is news to the
// operator, so the position and level ticking along do not flood the
// broker with a publish every second.
func changeKey(raw []byte) string {
	var s struct {
		State  string `json:"state"`
		Wanted string `json:"wanted"`
		Track  *struct {
			ID string `json:"id"`
		} `json:"track"`
		Volume   *int   `json:"volume"`
		Length   *int   `json:"playlist_length"`
		Fault    string `json:"fault"`
		Fallback bool   `json:"fallback"`
		Watchdog struct {
			Recoveries uint64 `json:"recoveries"`
		} `json:"watchdog"`
		// The verdict mohctl's HEALTH column and exit status show, and
		// the disk warning its DISK column flags.
		Health struct {
			State string `json:"state"`
		} `json:"health"`
		Disk *struct {
			Warning bool `json:"warning"`
		} `json:"disk"`
		Version string `json:"version"`
		// A new ALSA underrun is a click a caller heard: news at once,
		// not at the next 60 s publish.
		System *struct {
			Underruns *uint64 `json:"alsa_underruns"`
			// A system update's phase (and progress) is what a
			// rollout waits on: each step is news at once.
			Update *struct {
				Phase    string `json:"phase"`
				Progress int    `json:"progress"`
			} `json:"update"`
		} `json:"system"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return string(raw)
	}
	if s.Track != nil {
		s.Track.ID = "t:" + s.Track.ID
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// checkBrokerURL accepts only TLS transports: commands must come from a
// broker that proved its identity, and the box's certificate is its login.
func checkBrokerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("broker url: %w", err)
	}
	switch u.Scheme {
	case "mqtts", "ssl", "tls", "tcps", "mqtt+ssl", "wss":
	default:
		return fmt.Errorf("broker url %q: want mqtts://host:port (TLS is required)", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("broker url %q: no host", raw)
	}
	return nil
}

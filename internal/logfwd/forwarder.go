package logfwd

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRing is how many messages wait in RAM for an absent collector:
// about an hour of a busy box's events and warnings, a few hundred KiB.
const DefaultRing = 1000

// Options configure a Forwarder.
type Options struct {
	// URL is tls://HOST:PORT (RFC 5425), tcp://HOST:PORT (RFC 6587) or
	// udp://HOST:PORT (RFC 5426). Port 6514 is the default of tls, 514
	// of the others.
	URL string
	// TLSConfig verifies the collector (and may hold a client
	// certificate); tls:// only. nil trusts the system roots.
	TLSConfig *tls.Config
	// Hostname is the message's HOSTNAME: the device id, so a collector
	// files a box under the name the fleet knows it by.
	Hostname string
	// Device, Site and Version fill the moh@32473 structured data.
	Device, Site, Version string
	// AppName defaults to "mohd"; ProcID to this process's pid.
	AppName string
	ProcID  int
	// Ring bounds the messages kept while the collector is away
	// (default DefaultRing); the oldest go first.
	Ring int
	// Logger reports the link's own trouble. It must not lead back into
	// this Forwarder, or a collector outage would fill the ring with
	// news of itself.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay (1 s, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Now stamps the dropped-messages notice; nil means time.Now.
	Now func() time.Time
}

// Forwarder queues messages and sends them to the collector from its own
// goroutine (Run). Send never blocks.
type Forwarder struct {
	o       Options
	network string // tcp or udp
	addr    string
	useTLS  bool
	hdr     header
	log     *slog.Logger

	mu      sync.Mutex
	ring    []Message // circular: n messages from ring[head], oldest first
	head, n int
	// seq counts the messages that left the ring's front (sent or
	// dropped), so done knows whether the message it wrote is still the
	// oldest: a full ring may have dropped it while it was on the wire.
	seq     uint64
	dropped uint64 // since the last notice was sent
	wake    chan struct{}

	connected atomic.Bool
	sent      atomic.Uint64
	lost      atomic.Uint64
}

// New checks the options; Run connects.
func New(o Options) (*Forwarder, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("syslog url: %w", err)
	}
	f := &Forwarder{o: o, wake: make(chan struct{}, 1)}
	port := "514"
	switch u.Scheme {
	case "tls":
		f.network, f.useTLS, port = "tcp", true, "6514"
	case "tcp":
		f.network = "tcp"
	case "udp":
		f.network = "udp"
	default:
		return nil, fmt.Errorf("syslog url %q: want tls://HOST:PORT, tcp://HOST:PORT or udp://HOST:PORT", o.URL)
	}
	if u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("syslog url %q: want SCHEME://HOST[:PORT] and nothing else", o.URL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("syslog url %q: bad port", o.URL)
		}
		port = p
	}
	f.addr = net.JoinHostPort(u.Hostname(), port)
	if o.AppName == "" {
		o.AppName = "mohd"
	}
	if o.ProcID == 0 {
		o.ProcID = os.Getpid()
	}
	if o.Ring <= 0 {
		o.Ring = DefaultRing
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if f.useTLS {
		tc := o.TLSConfig
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		o.TLSConfig = tc
	}
	f.o = o
	f.hdr = newHeader(o.Hostname, o.AppName, o.ProcID, o.Device, o.Site, o.Version)
	f.log = o.Logger.With("component", "syslog", "collector", f.addr)
	f.ring = make([]Message, o.Ring)
	return f, nil
}

// Send queues m; when the ring is full the oldest message goes and is
// counted. It never waits for the network.
func (f *Forwarder) Send(m Message) {
	if m.Time.IsZero() {
		m.Time = f.o.Now()
	}
	f.mu.Lock()
	if f.n == len(f.ring) {
		f.head = (f.head + 1) % len(f.ring)
		f.n--
		f.seq++
		f.dropped++
		f.lost.Add(1)
	}
	f.ring[(f.head+f.n)%len(f.ring)] = m
	f.n++
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Stats: messages delivered to the network, messages the ring dropped,
// and whether the collector link is up.
func (f *Forwarder) Stats() (sent, dropped uint64, connected bool) {
	return f.sent.Load(), f.lost.Load(), f.connected.Load()
}

// Queued is how many messages wait for the collector.
func (f *Forwarder) Queued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// next returns the message to send now without removing it: the
// dropped-messages notice first if the ring lost some (noticed is how
// many it counts), then the oldest queued message. ok is false when
// there is nothing to send.
func (f *Forwarder) next() (m Message, noticed, seq uint64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropped > 0 {
		return Message{
			Time: f.o.Now(), Severity: SevWarning, MsgID: "dropped",
			Text: fmt.Sprintf("%d messages dropped while the collector was unreachable", f.dropped),
		}, f.dropped, 0, true
	}
	if f.n == 0 {
		return Message{}, 0, 0, false
	}
	return f.ring[f.head], 0, f.seq, true
}

// done removes what next returned, once it was written.
func (f *Forwarder) done(noticed, seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if noticed > 0 {
		// Only what the notice counted: more may have gone meanwhile.
		f.dropped -= min(noticed, f.dropped)
		return
	}
	if f.n > 0 && f.seq == seq {
		f.ring[f.head] = Message{}
		f.head = (f.head + 1) % len(f.ring)
		f.n--
		f.seq++
	}
}

// Run delivers queued messages until ctx is done, reconnecting with
// backoff whenever the collector goes away. A message is removed from
// the ring only once written, so one that met a dead link is sent again
// on the next. It returns nil: a lost collector is no reason to stop
// playing.
func (f *Forwarder) Run(ctx context.Context) error {
	wait := f.o.MinBackoff
	for ctx.Err() == nil {
		conn, err := f.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			f.log.Warn("syslog collector unreachable; keeping messages in RAM", "err", err, "retry_in", wait, "queued", f.Queued())
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, f.o.MaxBackoff)
			continue
		}
		f.log.Info("connected to syslog collector", "queued", f.Queued())
		f.connected.Store(true)
		err = f.deliver(ctx, conn)
		f.connected.Store(false)
		conn.Close()
		if ctx.Err() != nil {
			break
		}
		f.log.Warn("syslog collector connection lost; reconnecting", "err", err)
		wait = f.o.MinBackoff
		// A collector that accepts and drops at once must not make a
		// busy loop: wait the minimum before dialling again.
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

func (f *Forwarder) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	if !f.useTLS {
		return d.DialContext(ctx, f.network, f.addr)
	}
	td := &tls.Dialer{NetDialer: d, Config: f.o.TLSConfig}
	return td.DialContext(ctx, "tcp", f.addr)
}

// deliver writes messages on conn until it fails or ctx ends. The
// collector never sends anything, so a read that returns means it closed
// the connection: that is noticed at once, before the next message is
// written into a socket nobody reads.
func (f *Forwarder) deliver(ctx context.Context, conn net.Conn) error {
	gone := make(chan error, 1)
	if f.network == "tcp" {
		go func() {
			_, err := io.Copy(io.Discard, conn)
			if err == nil {
				err = io.EOF
			}
			gone <- err
		}()
	}
	for {
		for {
			select {
			case err := <-gone:
				return err
			default:
			}
			m, noticed, seq, ok := f.next()
			if !ok {
				break
			}
			msg := f.hdr.format(m)
			var frame []byte
			if f.network == "tcp" {
				frame = strconv.AppendInt(make([]byte, 0, len(msg)+8), int64(len(msg)), 10)
				frame = append(frame, ' ')
				frame = append(frame, msg...)
			} else {
				frame = msg
			}
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(frame); err != nil {
				return err
			}
			f.done(noticed, seq)
			f.sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-gone:
			return err
		case <-f.wake:
		}
	}
}

package fleet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mohproject/moh/internal/atomicfile"
)

// rotator holds the box's current fleet client pair behind the TLS
// config's GetClientCertificate, so a new pair takes effect at the next
// handshake, and owns the network connection so it can force that
// handshake.
type rotator struct {
	a       *Agent
	dir     string
	confirm time.Duration

	install sync.Mutex // one rotation at a time

	mu        sync.Mutex
	active    *tls.Certificate
	activePEM []byte // certificate and key, as the old pair to keep
	gen       uint64 // bumped on every switch
	handed    uint64 // gen given to the latest handshake
	upGen     uint64 // gen of the connection that came up last (0: none)
	up        chan struct{}
	conn      net.Conn
	// unconfirmed: an <kind>.old.pem was found at start.
	unconfirmed bool
}

// enableRotation puts the agent's client certificate behind the rotator.
// certFile/keyFile are what NewAgent loaded (ActivePair already chose).
func (a *Agent) enableRotation(certFile, keyFile string) error {
	if certFile == "" {
		return nil // no client certificate: nothing to rotate
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("read client certificate: %w", err)
	}
	pemPair := cb
	if keyFile != certFile {
		kb, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("read client key: %w", err)
		}
		pemPair = append(append(append([]byte{}, cb...), '\n'), kb...)
	}
	cert, err := tls.X509KeyPair(pemPair, pemPair)
	if err != nil {
		return fmt.Errorf("load client certificate: %w", err)
	}
	if err := os.MkdirAll(a.o.CertDir, 0o700); err != nil {
		return fmt.Errorf("cert dir: %w", err)
	}
	r := &rotator{a: a, dir: a.o.CertDir, confirm: a.o.CertConfirmTimeout, active: &cert,
		activePEM: pemPair, gen: 1, up: make(chan struct{})}
	if r.confirm <= 0 {
		r.confirm = 45 * time.Second
	}
	if _, err := os.Stat(oldPairFile(r.dir, CertKindFleet)); err == nil {
		r.unconfirmed = true
	}
	tc := a.tls.Clone()
	tc.Certificates = nil
	tc.GetClientCertificate = r.clientCert
	a.tls = tc
	a.rot = r
	return nil
}

func (r *rotator) clientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handed = r.gen
	return r.active, nil
}

// connected is called from onConnect: the pair handed to the latest
// handshake has been accepted.
func (r *rotator) connected() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.upGen = r.handed
	close(r.up)
	r.up = make(chan struct{})
	r.mu.Unlock()
}

// dialer opens the broker connection paho would, keeping it so kick can
// close it. It returns nil when the transport is one it cannot reproduce
// (a proxy from all_proxy), and rotation then says so.
func (r *rotator) dialer() mqtt.OpenConnectionFunc {
	if r == nil || os.Getenv("all_proxy") != "" {
		return nil
	}
	return func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		d := o.Dialer
		if d == nil {
			d = &net.Dialer{Timeout: 30 * time.Second}
		}
		var (
			c   net.Conn
			err error
		)
		switch uri.Scheme {
		case "wss":
			u := *uri
			u.User = nil
			c, err = mqtt.NewWebsocket(u.String(), o.TLSConfig, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
		default:
			c, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
		}
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.conn = c
		r.mu.Unlock()
		return c, nil
	}
}

// kick drops the connection; paho reconnects, with the current pair.
// It expires the read deadline rather than closing the socket: paho
// takes "use of closed network connection" for its own Disconnect and
// would not reconnect, while a read timeout is a lost connection.
func (r *rotator) kick() {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	if c != nil {
		c.SetReadDeadline(time.Now())
	}
}

func (r *rotator) switchTo(cert *tls.Certificate, pemPair []byte) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active, r.activePEM = cert, pemPair
	r.gen++
	return r.gen
}

// waitUp waits until a connection with pair generation gen is up.
func (r *rotator) waitUp(ctx context.Context, gen uint64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		r.mu.Lock()
		ok, ch := r.upGen == gen && r.a.connected.Load(), r.up
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// watchStart settles an install cut short by a crash or power cut: the
// new pair is in place but never proved itself. If it connects, the old
// pair goes; if not within the confirm time, the box goes back to it.
func (r *rotator) watchStart(ctx context.Context) {
	if r == nil || !r.unconfirmed {
		return
	}
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	log := r.a.log.With("kind", CertKindFleet)
	if r.waitUp(ctx, gen, r.confirm) {
		log.Info("rotated certificate connected after restart; old pair removed")
		os.Remove(oldPairFile(r.dir, CertKindFleet))
		return
	}
	if ctx.Err() != nil {
		return
	}
	log.Error("rotated certificate did not connect after restart; back on the old pair", "within", r.confirm)
	if err := r.restoreOld(); err != nil {
		log.Error("restore old pair", "err", err)
	}
}

// restoreOld makes the kept old pair the active one again.
func (r *rotator) restoreOld() error {
	old := oldPairFile(r.dir, CertKindFleet)
	b, err := os.ReadFile(old)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return fmt.Errorf("old pair: %w", err)
	}
	if err := atomicfile.WriteFile(PairFile(r.dir, CertKindFleet), b, 0o600); err != nil {
		return err
	}
	os.Remove(old)
	r.switchTo(&cert, b)
	r.kick()
	return nil
}

package webui

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Connection limits. A box on a site network must stay reachable for its
// admin and its monitoring while anybody on that network opens
// connections and leaves them idle: the global cap alone (Options.MaxConns)
// would let one such client shut everybody else out.
const (
	// defaultConnsPerAddr caps the connections of one client address
	// (IPv4) or one /64 (IPv6). A browser opens about six.
	defaultConnsPerAddr = 32
	// unauthReadTimeout bounds every read on a connection that has not
	// yet carried a request with a valid session or token: the request
	// header, a small body, and the wait for the next request. After one
	// authenticated request the server's normal timeouts apply (120 s idle).
	unauthReadTimeout = 5 * time.Second
)

// connLimiter is the listener's gatekeeper. It caps open connections in
// all and per client address, and when the global cap is reached it makes
// room by closing the oldest idle connection that never authenticated,
// rather than queueing the newcomer behind it: the newcomer may be the
// admin or /healthz. Only when every open connection is busy or belongs to
// an authenticated client does Accept wait for one to close.
type connLimiter struct {
	net.Listener
	max, perAddr int
	unauth       time.Duration
	log          *slog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	conns  map[*trackedConn]struct{}
	byAddr map[string]int
	closed bool

	// counted between two log lines, so a flood is logged once a minute
	// and not once per connection
	evicted, refused atomic.Int64
	lastLog          atomic.Int64 // unix nanoseconds
}

func newConnLimiter(ln net.Listener, max, perAddr int, unauth time.Duration, log *slog.Logger) *connLimiter {
	l := &connLimiter{
		Listener: ln, max: max, perAddr: perAddr, unauth: unauth, log: log,
		conns: map[*trackedConn]struct{}{}, byAddr: map[string]int{},
	}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// trackedConn is one accepted connection as the limiter sees it.
type trackedConn struct {
	net.Conn
	l   *connLimiter
	key string

	// guarded by l.mu
	idle      bool // no request in progress (http.StateNew or StateIdle)
	served    bool // finished a request (StateIdle seen)
	idleSince time.Time
	released  bool

	authed atomic.Bool

	dmu      sync.Mutex
	wantRead time.Time // the read deadline the server asked for
	clamped  bool      // and it was shortened because the conn is unauthenticated
}

// Accept returns the next connection within the limits; one over the
// per-address cap that cannot take an idle connection's place is closed
// at once.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := l.admit(c)
		l.maybeLog()
		if err != nil {
			c.Close()
			return nil, err
		}
		if tc != nil {
			return tc, nil
		}
		c.Close()
	}
}

// admit registers c, evicting idle unauthenticated connections to make
// room. It returns nil when c must be refused.
func (l *connLimiter) admit(c net.Conn) (*trackedConn, error) {
	key := addrKey(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[key] >= l.perAddr {
		v := l.oldestIdle(key, true)
		if v == nil {
			l.refused.Add(1)
			return nil, nil
		}
		l.evict(v)
	}
	for len(l.conns) >= l.max {
		if v := l.oldestIdle("", false); v != nil {
			l.evict(v)
			continue
		}
		if l.closed {
			return nil, net.ErrClosed
		}
		l.cond.Wait()
	}
	if l.closed {
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l, key: key, idle: true, idleSince: time.Now()}
	l.conns[tc] = struct{}{}
	l.byAddr[key]++
	return tc, nil
}

// oldestIdle finds the connection to evict from address key ("" for
// any): one that never authenticated and has no request in progress.
// Connections that have already had their answer go first, the one idle
// longest first; a new connection that has not sent its first request yet
// goes last (and with servedOnly not at all), since it may be the admin or
// a monitoring probe that has just arrived. Within one address servedOnly
// matters: there the newcomers competing for a place are mostly the same
// client's, and each must not push out the one before it unanswered.
func (l *connLimiter) oldestIdle(key string, servedOnly bool) *trackedConn {
	var best *trackedConn
	for c := range l.conns {
		if !c.idle || c.authed.Load() || key != "" && c.key != key || servedOnly && !c.served {
			continue
		}
		if best == nil || c.served && !best.served ||
			c.served == best.served && c.idleSince.Before(best.idleSince) {
			best = c
		}
	}
	return best
}

// evict closes v's socket; the HTTP server then finds it closed and
// forgets it. Closing the raw socket does not call back into the limiter.
func (l *connLimiter) evict(v *trackedConn) {
	l.releaseLocked(v)
	v.Conn.Close()
	l.evicted.Add(1)
}

func (l *connLimiter) releaseLocked(c *trackedConn) {
	if c.released {
		return
	}
	c.released = true
	delete(l.conns, c)
	if l.byAddr[c.key]--; l.byAddr[c.key] <= 0 {
		delete(l.byAddr, c.key)
	}
	l.cond.Broadcast()
}

// Close stops accepting and wakes an Accept waiting for room.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// connState is the http.Server's ConnState hook: it tells the limiter
// which connections are idle.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	tc := asTracked(c)
	if tc == nil || tc.l != l {
		return
	}
	l.mu.Lock()
	switch st {
	case http.StateNew, http.StateIdle:
		tc.idle, tc.idleSince = true, time.Now()
		tc.served = tc.served || st == http.StateIdle
		l.cond.Broadcast() // an Accept waiting for room may evict it now
	case http.StateActive, http.StateHijacked:
		tc.idle = false
	}
	l.mu.Unlock()
}

func (l *connLimiter) maybeLog() {
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(time.Minute) || l.evicted.Load()+l.refused.Load() == 0 || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("connection flood: idle unauthenticated connections closed to make room",
		"evicted", l.evicted.Swap(0), "refused_over_per_address_cap", l.refused.Swap(0),
		"max_conns", l.max, "max_conns_per_addr", l.perAddr)
}

// Close releases the connection's place.
func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// SetReadDeadline shortens every read deadline of an unauthenticated
// connection to the unauthenticated timeout. The zero deadline (the
// server's background read while a handler runs) and deadlines already
// nearer are passed on unchanged.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wantRead, c.clamped = t, false
	if !t.IsZero() && !c.authed.Load() {
		if lim := time.Now().Add(c.l.unauth); t.After(lim) {
			t, c.clamped = lim, true
		}
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// authenticate lifts the short timeouts once a request on c carried a
// valid session or token, restoring the deadline the server asked for.
func (c *trackedConn) authenticate() {
	if c.authed.Swap(true) {
		return
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.clamped {
		c.clamped = false
		c.Conn.SetReadDeadline(c.wantRead)
	}
}

func asTracked(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}

type connCtxKey struct{}

// connContext is the http.Server's ConnContext hook: requests find their
// connection through it to mark it authenticated.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc := asTracked(c); tc != nil {
		return context.WithValue(ctx, connCtxKey{}, tc)
	}
	return ctx
}

// markAuthenticated gives r's connection the normal timeouts and takes it
// out of the eviction candidates: r carried a valid session or token.
func markAuthenticated(r *http.Request) {
	if tc, ok := r.Context().Value(connCtxKey{}).(*trackedConn); ok {
		tc.authenticate()
	}
}

// addrKey is the unit the per-address cap counts by: the IPv4 address, or
// the /64 of an IPv6 address, since one host commonly holds a whole /64.
func addrKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if v4 := ta.IP.To4(); v4 != nil {
		return v4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

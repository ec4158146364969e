// Package sip is moh's RFC 7088 music-on-hold service: a PBX or SBC sends
// an INVITE to any user part, moh answers with G.711 (sendonly, 20 ms) and
// streams the phone hub's live signal to the caller until it hangs up.
// Signalling is github.com/emiago/sipgo (UDP and TCP), SDP is pion/sdp,
// packets are pion/rtp; every caller gets its own SSRC, sequence and
// timestamp over the one shared encoding.
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/mohproject/moh/internal/phone"
)

// Defaults of Options.
const (
	DefaultAddr       = "0.0.0.0:5060"
	DefaultMaxCalls   = 200
	DefaultRTPMin     = 10000
	DefaultRTPMax     = 20000
	DefaultRTPTimeout = 5 * time.Minute
)

// allowHeader is what moh answers to; OPTIONS and 405s say so.
const allowHeader = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"

// Options configure a Server.
type Options struct {
	Addr string // host:port for UDP and TCP; DefaultAddr when empty
	Hub  *phone.Hub
	// Allow lists the source prefixes that may call. Empty refuses every
	// INVITE with 403: a box must not become an open media relay.
	Allow    []netip.Prefix
	MaxCalls int // above it 486 Busy Here; DefaultMaxCalls when 0
	// RTP port range, each call taking an even/odd pair.
	RTPMin, RTPMax int
	// RTPTimeout ends a call whose peer sent no RTP or RTCP, and no
	// re-INVITE, UPDATE or OPTIONS, for this long. Negative: never.
	RTPTimeout time.Duration
	// AnswerDelay holds the 200 OK back after 100 Trying; tests use it to
	// CANCEL a pending INVITE. Zero in service: RFC 7088 answers at once.
	AnswerDelay time.Duration
	Logger      *slog.Logger
	// OnEvent reports what an admin must see (refusals for want of an
	// allow-list, a port in use); nil ignores them.
	OnEvent func(kind, message string)

	// minSE is RFC 4028's Min-SE, 90 s; tests lower it to see timers lapse.
	minSE int
}

// ParseAllow reads a comma-separated list of CIDRs or bare addresses.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("sip allow-list entry %q: want a CIDR (10.0.0.0/8) or an address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Server is the SIP music-on-hold service.
type Server struct {
	opt   Options
	log   *slog.Logger
	ports *portPool

	mu      sync.Mutex
	calls   map[string]*call // by dialog id
	pending int              // INVITEs admitted but not yet answered
	state   string
	lastErr string
	since   time.Time
	lastLog map[string]time.Time

	totals [numResults]atomic.Uint64

	// streams is every call's stream, for the fan-out; replaced whole on
	// change (copy on write) so the 50 Hz loop reads it without a lock.
	streams atomic.Pointer[[]*stream]
}

// Results of an INVITE, counted for status and metrics.
const (
	ResultAnswered = iota
	ResultForbidden
	ResultBusy
	ResultNotAcceptable
	ResultCanceled
	ResultFailed
	numResults
)

// ResultNames label moh_sip_calls_total{result}.
var ResultNames = [numResults]string{"answered", "forbidden", "busy", "not_acceptable", "canceled", "failed"}

// New checks opts and returns a server; Run serves it.
func New(opts Options) (*Server, error) {
	if opts.Hub == nil {
		return nil, errors.New("sip: no phone hub")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("sip address %q: %w", opts.Addr, err)
	}
	if opts.MaxCalls <= 0 {
		opts.MaxCalls = DefaultMaxCalls
	}
	if opts.RTPMin == 0 && opts.RTPMax == 0 {
		opts.RTPMin, opts.RTPMax = DefaultRTPMin, DefaultRTPMax
	}
	if opts.RTPMin < 1024 || opts.RTPMax > 65535 || opts.RTPMax-opts.RTPMin < 1 {
		return nil, fmt.Errorf("sip RTP ports %d-%d: want a range within 1024-65535", opts.RTPMin, opts.RTPMax)
	}
	if opts.RTPTimeout == 0 {
		opts.RTPTimeout = DefaultRTPTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.minSE == 0 {
		opts.minSE = minSE
	}
	return &Server{
		opt:     opts,
		log:     opts.Logger.With("component", "sip"),
		ports:   newPortPool(net.ParseIP(host), opts.RTPMin, opts.RTPMax),
		calls:   map[string]*call{},
		state:   "starting",
		lastLog: map[string]time.Time{},
	}, nil
}

// Run serves until ctx ends. A listener that cannot be had (port in use)
// is reported and retried with backoff; it never ends Run, so it never
// stops the line-out beside it.
func (s *Server) Run(ctx context.Context) error {
	go s.fanout(ctx)
	backoff := time.Second
	for {
		err := s.serve(ctx)
		if ctx.Err() != nil {
			s.setState("stopped", nil)
			return nil
		}
		s.setState("failed", err)
		s.log.Error("SIP server down, retrying", "addr", s.opt.Addr, "err", err, "retry_in", backoff)
		s.event("sip", fmt.Sprintf("SIP server on %s down: %v (retrying in %s)", s.opt.Addr, err, backoff))
		select {
		case <-ctx.Done():
			s.setState("stopped", nil)
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// fanout sends every frame of the hub to every call: one subscription
// and one goroutine for all calls, so a frame costs one wake-up and then
// a packet per caller. (A subscription per call measured 0.06-0.07 % of
// a core per caller, over the 0.05 % budget, most of it the scheduler
// waking a hundred goroutines fifty times a second.)
func (s *Server) fanout(ctx context.Context) {
	sub := s.opt.Hub.Subscribe("sip", 8)
	defer sub.Close()
	buf := make([]byte, 12+phone.FrameSamples)
	var pkt rtp.Packet
	for {
		select {
		case <-ctx.Done():
			return
		case f, ok := <-sub.C():
			if !ok {
				return
			}
			if p := s.streams.Load(); p != nil {
				for _, st := range *p {
					st.send(f, buf, &pkt)
				}
			}
		}
	}
}

// addStream and removeStream change the fan-out's list.
func (s *Server) addStream(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var old []*stream
	if p := s.streams.Load(); p != nil {
		old = *p
	}
	next := append(append(make([]*stream, 0, len(old)+1), old...), st)
	s.streams.Store(&next)
}

func (s *Server) removeStream(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.streams.Load()
	if p == nil {
		return
	}
	next := make([]*stream, 0, len(*p))
	for _, x := range *p {
		if x != st {
			next = append(next, x)
		}
	}
	s.streams.Store(&next)
}

// endpoint is one life of the listeners: the UA, its client (for BYE and
// UPDATE) and the dialog helper over them.
type endpoint struct {
	dua  *sipgo.DialogUA
	port int
}

func (s *Server) serve(ctx context.Context) error {
	pc, err := net.ListenPacket("udp", s.opt.Addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.opt.Addr)
	if err != nil {
		pc.Close()
		return err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("moh"))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	defer ua.Close()
	slog := s.opt.Logger.With("component", "sipgo")
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	cl, err := sipgo.NewClient(ua, sipgo.WithClientLogger(slog))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	ep := &endpoint{port: port, dua: &sipgo.DialogUA{Client: cl,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "moh", Host: "0.0.0.0", Port: port}}}}
	srv.OnInvite(func(r *sip.Request, tx sip.ServerTransaction) { s.onInvite(ctx, ep, r, tx) })
	srv.OnAck(s.onAck)
	srv.OnBye(s.onBye)
	srv.OnCancel(func(r *sip.Request, tx sip.ServerTransaction) {
		// The transaction layer answers a CANCEL that matches a pending
		// INVITE (200, then 487); one that reaches here matches nothing.
		tx.Respond(sip.NewResponseFromRequest(r, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
	})
	srv.OnOptions(s.onOptions)
	srv.OnUpdate(s.onUpdate)

	errc := make(chan error, 2)
	go func() { errc <- srv.ServeUDP(pc) }()
	go func() { errc <- srv.ServeTCP(ln) }()
	s.setState("listening", nil)
	s.log.Info("SIP music-on-hold listening", "addr", s.opt.Addr, "transports", "udp,tcp", "allow", len(s.opt.Allow))
	if len(s.opt.Allow) == 0 {
		s.log.Warn("SIP calls are refused with 403 until --sip-allow lists the PBX addresses")
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	s.hangupAll()
	pc.Close()
	ln.Close()
	return err
}

// hangupAll sends BYE to every call, in parallel and briefly: at
// shutdown, callers should hear the PBX's own treatment rather than dead
// air until their timers fire.
func (s *Server) hangupAll() {
	s.mu.Lock()
	calls := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() { defer wg.Done(); c.hangup("shutdown") }()
	}
	wg.Wait()
}

func (s *Server) setState(st string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != s.state {
		s.since = time.Now()
	}
	s.state = st
	s.lastErr = ""
	if err != nil {
		s.lastErr = err.Error()
	}
}

func (s *Server) event(kind, msg string) {
	if s.opt.OnEvent != nil {
		s.opt.OnEvent(kind, msg)
	}
}

// throttled says whether a log line of this kind is due: a PBX retrying
// refused calls must not fill the journal.
func (s *Server) throttled(kind string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.lastLog[kind]; ok && time.Since(t) < time.Minute {
		return true
	}
	s.lastLog[kind] = time.Now()
	return false
}

func (s *Server) allowed(src netip.Addr) bool {
	for _, p := range s.opt.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

func sourceAddr(r *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func respond(tx sip.ServerTransaction, r *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(r, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	tx.Respond(res)
}

// findCall returns the call an in-dialog request belongs to.
func (s *Server) findCall(r *sip.Request) *call {
	id, err := sip.DialogIDFromRequestUAS(r)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func (s *Server) onInvite(ctx context.Context, ep *endpoint, r *sip.Request, tx sip.ServerTransaction) {
	src := sourceAddr(r)
	if to := r.To(); to != nil && to.Params.Has("tag") {
		c := s.findCall(r)
		if c == nil {
			respond(tx, r, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
			return
		}
		c.reinvite(r, tx)
		return
	}
	if !src.IsValid() || !s.allowed(src.Addr()) {
		s.totals[ResultForbidden].Add(1)
		// Reported before the answer, so whoever sees the 403 finds the
		// event already there.
		if !s.throttled("forbidden") {
			msg := fmt.Sprintf("SIP call from %s refused (403): not in --sip-allow", src.Addr())
			if len(s.opt.Allow) == 0 {
				msg = fmt.Sprintf("SIP call from %s refused (403): set --sip-allow to the PBX addresses to accept calls", src.Addr())
			}
			s.log.Warn(msg)
			s.event("sip", msg)
		}
		respond(tx, r, sip.StatusForbidden, "Forbidden")
		return
	}
	var off *offer
	if len(r.Body()) > 0 {
		o, err := parseOffer(r.Body())
		if err != nil {
			s.totals[ResultNotAcceptable].Add(1)
			respond(tx, r, sip.StatusNotAcceptableHere, "Not Acceptable Here",
				sip.NewHeader("Warning", `304 moh "`+err.Error()+`"`))
			return
		}
		off = o
	}
	se, seErr := parseSessionTimer(r, s.opt.minSE)
	if seErr != nil {
		respond(tx, r, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(s.opt.minSE)))
		return
	}
	s.mu.Lock()
	if len(s.calls)+s.pending >= s.opt.MaxCalls {
		s.mu.Unlock()
		s.totals[ResultBusy].Add(1)
		respond(tx, r, sip.StatusBusyHere, "Busy Here")
		if !s.throttled("busy") {
			s.log.Warn("SIP call refused (486): --sip-max-calls reached", "max", s.opt.MaxCalls, "from", src.Addr())
		}
		return
	}
	s.pending++
	s.mu.Unlock()
	admitted := true
	defer func() {
		if admitted {
			s.mu.Lock()
			s.pending--
			s.mu.Unlock()
		}
	}()

	rtpc, rtcpc, err := s.ports.open()
	if err != nil {
		s.totals[ResultFailed].Add(1)
		respond(tx, r, sip.StatusServiceUnavailable, "Service Unavailable")
		s.log.Error("SIP call refused (503)", "err", err)
		return
	}
	st := newStream(rtpc, rtcpc)
	sess, err := ep.dua.ReadInvite(r, tx)
	if err != nil {
		st.close()
		s.totals[ResultFailed].Add(1)
		respond(tx, r, sip.StatusBadRequest, "Bad Request")
		return
	}
	c := newCall(s, sess, src, st, localAddrToward(src.Addr()), ep.port, r.Transport(), se)
	sess.Respond(sip.StatusTrying, "Trying", nil)
	if s.opt.AnswerDelay > 0 {
		select {
		case <-sess.Context().Done():
		case <-time.After(s.opt.AnswerDelay):
		case <-ctx.Done():
		}
	}
	if sess.Context().Err() != nil || ctx.Err() != nil {
		st.close()
		s.totals[ResultCanceled].Add(1)
		return
	}
	body, err := c.localSDP(off)
	if err != nil {
		st.close()
		s.totals[ResultFailed].Add(1)
		sess.Respond(sip.StatusInternalServerError, "Server Internal Error", nil)
		return
	}
	if off != nil {
		c.apply(off)
	}
	s.mu.Lock()
	s.calls[sess.ID] = c
	s.pending--
	admitted = false
	s.mu.Unlock()
	c.start()
	res := sip.NewSDPResponseFromRequest(sess.InviteRequest, body)
	c.decorate(res)
	if err := sess.WriteResponse(res); err != nil {
		// Canceled in the meantime, or never ACKed: RFC 3261 §13.3.1.4
		// ends such a session with BYE.
		if errors.Is(err, sip.ErrTransactionCanceled) || sess.LoadState() == sip.DialogStateEnded {
			s.totals[ResultCanceled].Add(1)
			c.end("canceled")
			return
		}
		s.totals[ResultAnswered].Add(1)
		c.hangup("no ACK")
		return
	}
	s.totals[ResultAnswered].Add(1)
	s.log.Info("SIP call answered", "from", src, "codec", c.codecName(), "call_id", r.CallID().Value())
}

func (s *Server) onAck(r *sip.Request, tx sip.ServerTransaction) {
	c := s.findCall(r)
	if c == nil {
		return
	}
	c.ack(r, tx)
}

func (s *Server) onBye(r *sip.Request, tx sip.ServerTransaction) {
	c := s.findCall(r)
	if c == nil {
		respond(tx, r, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if err := c.sess.ReadBye(r, tx); err != nil {
		respond(tx, r, sip.StatusOK, "OK")
	}
	c.end("caller hung up")
}

func (s *Server) onOptions(r *sip.Request, tx sip.ServerTransaction) {
	src := sourceAddr(r)
	if !src.IsValid() || !s.allowed(src.Addr()) {
		respond(tx, r, sip.StatusForbidden, "Forbidden")
		return
	}
	if c := s.findCall(r); c != nil {
		c.signalled()
	}
	respond(tx, r, sip.StatusOK, "OK",
		sip.NewHeader("Allow", allowHeader),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", "timer"))
}

func (s *Server) onUpdate(r *sip.Request, tx sip.ServerTransaction) {
	c := s.findCall(r)
	if c == nil {
		respond(tx, r, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	c.update(r, tx)
}

func (s *Server) remove(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[c.sess.ID] == c {
		delete(s.calls, c.sess.ID)
	}
}

// localAddrToward is the address of this box that routes to peer, for
// the SDP c= line and Contact when listening on 0.0.0.0. Connecting a UDP
// socket sends nothing.
func localAddrToward(peer netip.Addr) netip.Addr {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 9)))
	if err != nil {
		return netip.IPv4Unspecified()
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// Status is the SIP service as status, the page and metrics show it.
type Status struct {
	Addr     string       `json:"addr"`
	State    string       `json:"state"` // starting, listening, failed, stopped
	Error    string       `json:"error,omitempty"`
	Since    time.Time    `json:"since"`
	MaxCalls int          `json:"max_calls"`
	Allow    []string     `json:"allow"`
	Active   int          `json:"calls_active"`
	Calls    []CallStatus `json:"calls"`
	// Totals counts INVITEs by result (ResultNames).
	Totals map[string]uint64 `json:"totals"`
}

// CallStatus is one caller.
type CallStatus struct {
	Caller      string    `json:"caller"` // signalling source
	Media       string    `json:"media"`  // where RTP goes; empty on hold
	Codec       string    `json:"codec"`
	Since       time.Time `json:"since"`
	Confirmed   bool      `json:"confirmed"` // the caller ACKed the answer
	PacketsSent uint64    `json:"packets_sent"`
}

// Status reports the service now.
func (s *Server) Status() Status {
	s.mu.Lock()
	st := Status{Addr: s.opt.Addr, State: s.state, Error: s.lastErr, Since: s.since,
		MaxCalls: s.opt.MaxCalls, Allow: []string{}, Calls: []CallStatus{}, Totals: map[string]uint64{}}
	calls := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	for _, p := range s.opt.Allow {
		st.Allow = append(st.Allow, p.String())
	}
	for _, c := range calls {
		st.Calls = append(st.Calls, c.status())
	}
	sort.Slice(st.Calls, func(i, j int) bool { return st.Calls[i].Since.Before(st.Calls[j].Since) })
	st.Active = len(st.Calls)
	for i, n := range ResultNames {
		st.Totals[n] = s.totals[i].Load()
	}
	return st
}

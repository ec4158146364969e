// Package sip is moh's RFC 7088 music-on-hold service: a PBX or SBC sends
// an INVITE to any user part, moh answers with G.711 (sendonly, 20 ms) and
// streams the phone hub's live signal to the caller until it hangs up.
// Signalling is github.com/emiago/sipgo (UDP and TCP), SDP is pion/sdp,
// packets are pion/rtp; every caller gets its own SSRC, sequence and
// timestamp over the one shared encoding, and each 20 ms all callers'
// packets leave one shared port in one system call.
//
// Files: server.go (options, listeners, life cycle), handlers.go (the
// SIP requests), call.go (one caller's dialog), sessiontimer.go (RFC
// 4028 and the inactivity timeout), retransmit.go (2xx to re-INVITEs
// over UDP), sdp.go (offer/answer), media.go (the shared RTP/RTCP port:
// fan-out and whose incoming packets are), batch_linux.go (sendmmsg),
// stream.go (a call's RTP), ports.go, allow.go, status.go.
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

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
	// RTP port range: the first free even/odd pair in it is the media
	// port every call's SDP names (RTP even, RTCP odd).
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

// endpoint is one life of the listeners: the dialog helper over the UA
// and its client (for BYE and UPDATE), the SIP port and the media socket
// pair every call of this life shares.
type endpoint struct {
	dua   *sipgo.DialogUA
	port  int
	media *media
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
	med, err := newMedia(s.ports)
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	defer med.close()
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
	ep := &endpoint{port: port, media: med, dua: &sipgo.DialogUA{Client: cl,
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

	mctx, stopMedia := context.WithCancel(ctx)
	defer stopMedia() // before med.close, deferred earlier
	med.start(mctx, s.opt.Hub)
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeUDP(pc) }()
	go func() { errc <- srv.ServeTCP(ln) }()
	s.setState("listening", nil)
	s.log.Info("SIP music-on-hold listening", "addr", s.opt.Addr, "transports", "udp,tcp",
		"rtp_port", med.port(), "allow", len(s.opt.Allow))
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

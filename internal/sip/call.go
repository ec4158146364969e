package sip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028): moh accepts what the caller asks for, down
// to Min-SE, and ends a session nobody refreshed.
const minSE = 90

var errSmallSE = errors.New("session interval below Min-SE")

type sessionTimer struct {
	interval  time.Duration // 0: no session timer
	refresher string        // "uac" or "uas"
	// callerHasTimer: the INVITE said Supported: timer, so the answer
	// may Require it.
	callerHasTimer bool
}

func supportsTimer(r *sip.Request) bool {
	for _, h := range append(r.GetHeaders("Supported"), r.GetHeaders("k")...) {
		for _, opt := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(opt), "timer") {
				return true
			}
		}
	}
	return false
}

// parseSessionTimer reads Session-Expires (or its compact form x). The
// refresher is the caller unless it named moh: RFC 4028 §9 lets the UAS
// choose when the request does not say, and a caller that refreshes is
// one fewer request moh has to send.
func parseSessionTimer(r *sip.Request, minSE int) (sessionTimer, error) {
	h := r.GetHeader("Session-Expires")
	if h == nil {
		h = r.GetHeader("x")
	}
	if h == nil {
		return sessionTimer{}, nil
	}
	parts := strings.Split(h.Value(), ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n <= 0 {
		return sessionTimer{}, nil // unreadable: as if absent
	}
	if n < minSE {
		return sessionTimer{}, errSmallSE
	}
	st := sessionTimer{interval: time.Duration(n) * time.Second, refresher: "uac"}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "refresher") && strings.EqualFold(v, "uas") {
			st.refresher = "uas"
		}
	}
	// RFC 4028 §9: a caller that does not support timers (a proxy added
	// Session-Expires) cannot refresh; moh does, and must not Require it.
	st.callerHasTimer = supportsTimer(r)
	if !st.callerHasTimer {
		st.refresher = "uas"
	}
	return st, nil
}

// call is one caller on hold.
type call struct {
	srv       *Server
	sess      *sipgo.DialogServerSession
	caller    netip.AddrPort
	st        *stream
	local     netip.Addr
	sipPort   int
	transport string
	since     time.Time
	sessID    uint64

	mu        sync.Mutex
	version   uint64
	codec     Codec
	dest      netip.AddrPort
	timer     sessionTimer
	refresh   time.Time // last refresh of the session timer
	delayed   bool      // INVITE without SDP: the answer comes in the ACK
	confirmed bool      // the caller ACKed moh's 2xx

	lastSignal atomic.Int64 // unix nanos of the last in-dialog request
	done       chan struct{}
	endOnce    sync.Once
}

func newCall(s *Server, sess *sipgo.DialogServerSession, caller netip.AddrPort, st *stream,
	local netip.Addr, sipPort int, transport string, se sessionTimer) *call {
	var b [8]byte
	rand.Read(b[:])
	now := time.Now()
	c := &call{srv: s, sess: sess, caller: caller, st: st, local: local, sipPort: sipPort,
		transport: transport, since: now, sessID: binary.BigEndian.Uint64(b[:]) >> 1,
		timer: se, refresh: now, done: make(chan struct{})}
	c.lastSignal.Store(now.UnixNano())
	return c
}

// localSDP is moh's answer to off, or moh's own offer (both codecs) for a
// delayed-offer INVITE.
func (c *call) localSDP(off *offer) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version++
	if off == nil {
		c.delayed = true
		off = &offer{Codec: Codec{Name: "PCMU", PT: ptPCMU}, Send: true}
		body, err := answer(off, c.local, c.st.port(), c.sessID, c.version)
		if err != nil {
			return nil, err
		}
		// Offer PCMA too, after PCMU: the caller picks.
		s := strings.Replace(string(body), "RTP/AVP 0\r\n", "RTP/AVP 0 8\r\n", 1)
		s = strings.Replace(s, "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", 1)
		return []byte(s), nil
	}
	return answer(off, c.local, c.st.port(), c.sessID, c.version)
}

// apply points the stream where off says.
func (c *call) apply(off *offer) {
	c.mu.Lock()
	c.codec = off.Codec
	c.dest = netip.AddrPort{}
	if off.Send {
		c.dest = off.Dest
	}
	c.mu.Unlock()
	c.st.set(off.Dest, off.Send, off.Codec)
}

// decorate adds moh's headers to a 2xx for INVITE or UPDATE.
func (c *call) decorate(res *sip.Response) {
	cont := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "moh", Host: c.local.String(), Port: c.sipPort}}
	if strings.EqualFold(c.transport, "TCP") {
		cont.Address.UriParams = sip.NewParams()
		cont.Address.UriParams.Add("transport", "tcp")
	}
	res.AppendHeader(&cont)
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	c.mu.Lock()
	t := c.timer
	c.mu.Unlock()
	if t.interval > 0 {
		res.AppendHeader(sip.NewHeader("Session-Expires",
			strconv.Itoa(int(t.interval/time.Second))+";refresher="+t.refresher))
		if t.callerHasTimer {
			res.AppendHeader(sip.NewHeader("Require", "timer"))
		}
	}
}

// start joins the call to the server's fan-out and runs its listeners
// and supervisor.
func (c *call) start() {
	c.srv.addStream(c.st)
	go c.st.listen(c.st.rtpc)
	go c.st.listen(c.st.rtcpc)
	go c.supervise()
}

func (c *call) signalled() { c.lastSignal.Store(time.Now().UnixNano()) }

func (c *call) ack(r *sip.Request, tx sip.ServerTransaction) {
	c.signalled()
	c.sess.ReadAck(r, tx)
	c.mu.Lock()
	c.confirmed = true
	delayed := c.delayed
	c.delayed = false
	c.mu.Unlock()
	if !delayed {
		return
	}
	off, err := parseOffer(r.Body())
	if err != nil {
		// RFC 3261 §13.3.1.4: an unacceptable answer in the ACK ends the
		// session with BYE.
		go c.hangup("no usable answer in ACK")
		return
	}
	c.apply(off)
}

// reinvite answers a re-INVITE: hold, unhold, a new address or codec.
// The stream moves; its SSRC, sequence and timestamp carry on.
func (c *call) reinvite(r *sip.Request, tx sip.ServerTransaction) {
	c.signalled()
	if err := c.sess.ReadRequest(r, tx); err != nil {
		respond(tx, r, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	var off *offer
	if len(r.Body()) > 0 {
		o, err := parseOffer(r.Body())
		if err != nil {
			// The session stays as it was (RFC 3261 §14.2).
			respond(tx, r, sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
		off = o
	}
	if se, err := parseSessionTimer(r, c.srv.opt.minSE); err == nil && se.interval > 0 {
		c.mu.Lock()
		c.timer = se
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.refresh = time.Now()
	c.mu.Unlock()
	body, err := c.localSDP(off)
	if err != nil {
		respond(tx, r, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	if off != nil {
		c.apply(off)
	}
	res := sip.NewSDPResponseFromRequest(r, body)
	c.decorate(res)
	tx.Respond(res)
	c.srv.log.Info("SIP call re-INVITE", "from", c.caller, "media", c.mediaString(), "codec", c.codecName())
}

// update answers UPDATE: a session refresh, or a new offer.
func (c *call) update(r *sip.Request, tx sip.ServerTransaction) {
	c.signalled()
	c.mu.Lock()
	c.refresh = time.Now()
	c.mu.Unlock()
	if se, err := parseSessionTimer(r, c.srv.opt.minSE); err == nil && se.interval > 0 {
		c.mu.Lock()
		c.timer = se
		c.mu.Unlock()
	}
	var res *sip.Response
	if len(r.Body()) > 0 {
		off, err := parseOffer(r.Body())
		if err != nil {
			respond(tx, r, sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
		body, err := c.localSDP(off)
		if err != nil {
			respond(tx, r, sip.StatusInternalServerError, "Server Internal Error")
			return
		}
		c.apply(off)
		res = sip.NewSDPResponseFromRequest(r, body)
	} else {
		res = sip.NewResponseFromRequest(r, sip.StatusOK, "OK", nil)
	}
	c.decorate(res)
	tx.Respond(res)
}

// supervise ends the call when its peer has gone quiet or its session
// timer lapsed, and refreshes the session when moh is the refresher.
func (c *call) supervise() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.sess.Context().Done():
			c.end("dialog ended")
			return
		case now := <-t.C:
			if to := c.srv.opt.RTPTimeout; to > 0 {
				last := max(c.lastSignal.Load(), c.st.lastHeard.Load())
				if now.Sub(time.Unix(0, last)) > to {
					c.hangup("no RTP, RTCP or signalling for " + to.String())
					return
				}
			}
			c.mu.Lock()
			tm, refreshed := c.timer, c.refresh
			c.mu.Unlock()
			if tm.interval == 0 {
				continue
			}
			age := now.Sub(refreshed)
			if tm.refresher == "uas" && age >= tm.interval/2 {
				if err := c.sendRefresh(); err != nil {
					c.hangup("session refresh failed: " + err.Error())
					return
				}
				continue
			}
			// RFC 4028 §10: BYE at the interval less a third (at most
			// 32 s), unless refreshed.
			if tm.refresher == "uac" && age > tm.interval-min(32*time.Second, tm.interval/3) {
				c.hangup("session timer expired")
				return
			}
		}
	}
}

// sendRefresh refreshes the session with an UPDATE without SDP (RFC 4028
// §7.4 allows it), which needs no ACK and changes no media.
func (c *call) sendRefresh() error {
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.UPDATE, c.sess.InviteRequest.Contact().Address)
	c.mu.Lock()
	req.AppendHeader(sip.NewHeader("Session-Expires",
		strconv.Itoa(int(c.timer.interval/time.Second))+";refresher=uas"))
	c.mu.Unlock()
	res, err := c.sess.Do(ctx, req)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return errors.New(res.StartLine())
	}
	c.mu.Lock()
	c.refresh = time.Now()
	c.mu.Unlock()
	return nil
}

// hangup ends the call and sends BYE. The media stops first: a peer
// that has gone away will not answer the BYE either, and its port must
// not get a packet more while the BYE is retransmitted.
func (c *call) hangup(why string) {
	c.end(why)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.sess.Bye(ctx); err != nil {
		c.srv.log.Debug("SIP BYE not answered", "to", c.caller, "err", err)
	}
}

// end stops the stream and forgets the call; safe to call more than once.
func (c *call) end(why string) {
	c.endOnce.Do(func() {
		close(c.done)
		c.srv.removeStream(c.st)
		c.st.close()
		c.srv.remove(c)
		c.sess.Close()
		c.srv.log.Info("SIP call ended", "from", c.caller, "why", why,
			"duration", time.Since(c.since).Round(time.Second), "packets", c.st.sent.Load())
	})
}

func (c *call) codecName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codec.Name
}

func (c *call) mediaString() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dest.IsValid() {
		return ""
	}
	return c.dest.String()
}

func (c *call) status() CallStatus {
	c.mu.Lock()
	confirmed := c.confirmed
	c.mu.Unlock()
	return CallStatus{Caller: c.caller.String(), Media: c.mediaString(), Codec: c.codecName(),
		Since: c.since, Confirmed: confirmed, PacketsSent: c.st.sent.Load()}
}

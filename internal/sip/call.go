package sip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// call is one caller on hold.
type call struct {
	srv       *Server
	sess      *sipgo.DialogServerSession
	caller    netip.AddrPort
	st        *stream
	media     *media // the socket pair st is sent from
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
	refresh   time.Time                // last refresh of the session timer
	delayed   bool                     // INVITE without SDP: the answer comes in the ACK
	confirmed bool                     // the caller ACKed moh's 2xx
	acks      map[uint32]chan struct{} // re-INVITE answers awaiting their ACK, by CSeq

	lastSignal atomic.Int64 // unix nanos of the last in-dialog request
	done       chan struct{}
	endOnce    sync.Once
}

func newCall(s *Server, sess *sipgo.DialogServerSession, caller netip.AddrPort, st *stream,
	ep *endpoint, local netip.Addr, transport string, se sessionTimer) *call {
	var b [8]byte
	rand.Read(b[:])
	now := time.Now()
	c := &call{srv: s, sess: sess, caller: caller, st: st, media: ep.media, local: local, sipPort: ep.port,
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
		body, err := answer(off, c.local, c.media.port(), c.sessID, c.version)
		if err != nil {
			return nil, err
		}
		// Offer PCMA too, after PCMU: the caller picks.
		s := strings.Replace(string(body), "RTP/AVP 0\r\n", "RTP/AVP 0 8\r\n", 1)
		s = strings.Replace(s, "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", 1)
		return []byte(s), nil
	}
	return answer(off, c.local, c.media.port(), c.sessID, c.version)
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
	oldPeer, newPeer := c.st.set(off.Dest, off.Send, off.Codec)
	c.media.moved(c.st, oldPeer, newPeer)
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

// start joins the call to the media socket's fan-out and runs its
// supervisor.
func (c *call) start() {
	c.media.add(c.st)
	go c.supervise()
}

func (c *call) signalled() { c.lastSignal.Store(time.Now().UnixNano()) }

func (c *call) ack(r *sip.Request, tx sip.ServerTransaction) {
	c.signalled()
	c.sess.ReadAck(r, tx)
	c.acked(r.CSeq().SeqNo)
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
	off, err := offerIn(r)
	if err != nil {
		notAcceptable(tx, r, err) // the session stays as it was (RFC 3261 §14.2)
		return
	}
	c.refreshed(r)
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
	c.respond2xx(r, tx, res)
	st := c.status()
	c.srv.log.Info("SIP call re-INVITE", "from", c.caller, "media", st.Media, "codec", st.Codec)
}

// update answers UPDATE: a session refresh, or a new offer.
func (c *call) update(r *sip.Request, tx sip.ServerTransaction) {
	c.signalled()
	c.refreshed(r)
	off, err := offerIn(r)
	if err != nil {
		notAcceptable(tx, r, err)
		return
	}
	res := sip.NewResponseFromRequest(r, sip.StatusOK, "OK", nil)
	if off != nil {
		body, err := c.localSDP(off)
		if err != nil {
			respond(tx, r, sip.StatusInternalServerError, "Server Internal Error")
			return
		}
		c.apply(off)
		res = sip.NewSDPResponseFromRequest(r, body)
	}
	c.decorate(res)
	tx.Respond(res)
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
		c.media.remove(c.st)
		c.srv.remove(c)
		c.sess.Close()
		c.srv.log.Info("SIP call ended", "from", c.caller, "why", why,
			"duration", time.Since(c.since).Round(time.Second), "packets", c.st.sent.Load())
	})
}

// status is the call now; Media is empty while nothing is sent (hold).
func (c *call) status() CallStatus {
	st := CallStatus{Caller: c.caller.String(), Since: c.since, PacketsSent: c.st.sent.Load()}
	c.mu.Lock()
	defer c.mu.Unlock()
	st.Codec, st.Confirmed = c.codec.Name, c.confirmed
	if c.dest.IsValid() {
		st.Media = c.dest.String()
	}
	return st
}

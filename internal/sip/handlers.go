package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// notAcceptable refuses an offer with 488 and says why (RFC 3261
// §20.43: warn-code 304, media type not available).
func notAcceptable(tx sip.ServerTransaction, r *sip.Request, why error) {
	respond(tx, r, sip.StatusNotAcceptableHere, "Not Acceptable Here",
		sip.NewHeader("Warning", `304 moh "`+why.Error()+`"`))
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
	off, err := offerIn(r)
	if err != nil {
		s.totals[ResultNotAcceptable].Add(1)
		notAcceptable(tx, r, err)
		return
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

	st := newStream()
	sess, err := ep.dua.ReadInvite(r, tx)
	if err != nil {
		s.totals[ResultFailed].Add(1)
		respond(tx, r, sip.StatusBadRequest, "Bad Request")
		return
	}
	c := newCall(s, sess, src, st, ep, localAddrToward(src.Addr()), r.Transport(), se)
	sess.Respond(sip.StatusTrying, "Trying", nil)
	if s.opt.AnswerDelay > 0 {
		select {
		case <-sess.Context().Done():
		case <-time.After(s.opt.AnswerDelay):
		case <-ctx.Done():
		}
	}
	if sess.Context().Err() != nil || ctx.Err() != nil {
		s.totals[ResultCanceled].Add(1)
		return
	}
	body, err := c.localSDP(off)
	if err != nil {
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
	s.log.Info("SIP call answered", "from", src, "codec", c.status().Codec, "call_id", r.CallID().Value())
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

package sip

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

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

// refreshed notes a session refresh (RFC 4028 §7: a re-INVITE or
// UPDATE): the timer starts over, at the interval the request asks for
// if it asks for one moh accepts.
func (c *call) refreshed(r *sip.Request) {
	se, err := parseSessionTimer(r, c.srv.opt.minSE)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && se.interval > 0 {
		c.timer = se
	}
	c.refresh = time.Now()
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

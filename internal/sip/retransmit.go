package sip

import (
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// respond2xx sends the 2xx to a re-INVITE and, over UDP, sends it again
// until its ACK comes: RFC 3261 §13.3.1.4 (and RFC 6026) make that the
// UA's job, not the transaction's, and sipgo does it only for the
// dialog's first INVITE. A lost 200 would otherwise leave the caller
// retransmitting its re-INVITE into a transaction that no longer
// answers, and the new media address unconfirmed. The waits start at
// T1 and double up to T2; after 64·T1 without an ACK moh gives up on
// the retransmissions and keeps the call (the media already moved).
func (c *call) respond2xx(r *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	if strings.EqualFold(r.Transport(), "UDP") {
		acked := c.awaitAck(r.CSeq().SeqNo)
		go c.retransmit(tx, res, r.CSeq().SeqNo, acked)
	}
	tx.Respond(res)
}

// awaitAck returns a channel closed when the ACK for CSeq seq arrives.
func (c *call) awaitAck(seq uint32) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acks == nil {
		c.acks = map[uint32]chan struct{}{}
	}
	ch := make(chan struct{})
	c.acks[seq] = ch
	return ch
}

// acked notes the ACK for CSeq seq; ACKs of nothing awaited are ignored.
func (c *call) acked(seq uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.acks[seq]; ok {
		close(ch)
		delete(c.acks, seq)
	}
}

func (c *call) retransmit(tx sip.ServerTransaction, res *sip.Response, seq uint32, acked <-chan struct{}) {
	wait := sip.T1
	t := time.NewTimer(wait)
	defer t.Stop()
	giveUp := time.NewTimer(64 * sip.T1)
	defer giveUp.Stop()
	for {
		select {
		case <-acked:
			return
		case <-c.done:
			return
		case <-giveUp.C:
			c.acked(seq) // forget the wait
			c.srv.log.Warn("SIP re-INVITE answer never ACKed", "from", c.caller, "cseq", seq)
			return
		case <-t.C:
			if err := tx.Respond(res); err != nil {
				return // the transaction is over: nothing more can be sent on it
			}
			wait = min(2*wait, sip.T2)
			t.Reset(wait)
		}
	}
}

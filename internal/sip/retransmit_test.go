package sip

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestReinvite200Retransmitted: over UDP moh sends its 200 to a
// re-INVITE again (T1, then doubling) until the ACK comes, and no more
// after it.
func TestReinvite200Retransmitted(t *testing.T) {
	srv := startServer(t, 5173, nil)
	c := newCaller(t, hostIP)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0")); err != nil || code != 200 {
		t.Fatalf("INVITE: %d %v", code, err)
	}
	req := sip.NewRequest(sip.INVITE, c.sess.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offerSDP(hostIP, c.port(), "", "8"))
	tx, err := c.sess.TransactionRequest(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	var again atomic.Int32
	tx.OnRetransmission(func(*sip.Response) { again.Add(1) })
	select {
	case res := <-tx.Responses():
		if res.StatusCode != 200 {
			t.Fatalf("re-INVITE: %d", res.StatusCode)
		}
	case <-ctx.Done():
		t.Fatal("no answer to the re-INVITE")
	}
	time.Sleep(1800 * time.Millisecond) // T1 0.5 s: again at 0.5 and 1.5 s
	if n := again.Load(); n < 2 {
		t.Fatalf("200 to the re-INVITE sent again %d times in 1.8 s without an ACK, want 2 or more", n)
	}
	ack := sip.NewRequest(sip.ACK, c.sess.InviteResponse.Contact().Address)
	if err := c.sess.WriteRequest(ack); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	n := again.Load()
	time.Sleep(4500 * time.Millisecond) // past the next retransmission (T2 is 4 s)
	if more := again.Load() - n; more > 0 {
		t.Errorf("200 sent %d more times after the ACK", more)
	}
	if st := srv.Status(); st.Active != 1 || st.Calls[0].Codec != "PCMA" {
		t.Errorf("status after the re-INVITE: %+v", st.Calls)
	}
	c.bye(ctx)
}

package sip

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/mohproject/moh/internal/phone"
)

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCallStreamsTone(t *testing.T) {
	for _, tc := range []struct {
		formats []string
		codec   string
		pt      uint8
	}{
		{[]string{"0", "8"}, "PCMU", 0},
		{[]string{"18", "8", "0"}, "PCMA", 8}, // first common in the offer's order
	} {
		t.Run(tc.codec, func(t *testing.T) {
			srv := startServer(t, 5160, nil)
			c := newCaller(t, hostIP)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "sendrecv", tc.formats...))
			if err != nil || code != 200 {
				t.Fatalf("INVITE: %d %v", code, err)
			}
			ans := string(c.sess.InviteResponse.Body())
			for _, want := range []string{"a=sendonly", "a=ptime:20", fmt.Sprintf("m=audio %d RTP/AVP %d", 0, tc.pt)[0:8], "a=rtpmap:" + fmt.Sprint(tc.pt) + " " + tc.codec + "/8000"} {
				if !strings.Contains(ans, want) {
					t.Errorf("answer lacks %q:\n%s", want, ans)
				}
			}
			time.Sleep(2 * time.Second)
			st := srv.Status()
			if st.Active != 1 || st.Calls[0].Codec != tc.codec || !st.Calls[0].Confirmed || !strings.HasPrefix(st.Calls[0].Caller, hostIP+":") {
				t.Errorf("status: %+v", st)
			}
			if err := c.bye(ctx); err != nil {
				t.Fatalf("BYE: %v", err)
			}
			waitFor(t, "call to end", 3*time.Second, func() bool { return srv.Status().Active == 0 })
			pkts := c.packets()
			if len(pkts) < 90 || len(pkts) > 110 {
				t.Fatalf("%d packets in 2 s, want about 100 (50/s)", len(pkts))
			}
			for i, p := range pkts {
				if p.PayloadType != tc.pt || len(p.Payload) != 160 {
					t.Fatalf("packet %d: PT %d, %d bytes", i, p.PayloadType, len(p.Payload))
				}
				if i > 0 {
					if p.SequenceNumber != pkts[i-1].SequenceNumber+1 || p.Timestamp != pkts[i-1].Timestamp+160 || p.SSRC != pkts[0].SSRC {
						t.Fatalf("packet %d: seq %d ts %d after seq %d ts %d", i, p.SequenceNumber, p.Timestamp, pkts[i-1].SequenceNumber, pkts[i-1].Timestamp)
					}
				}
			}
			late := c.lateness()
			t.Logf("packet lateness p50 %s p99 %s max %s", percentile(late, .5), percentile(late, .99), percentile(late, 1))
			pcm := decode(pkts)
			if f := toneFreq(pcm, 8000); math.Abs(f-toneHz) > 2 {
				t.Errorf("tone at %.2f Hz, want %.0f", f, toneHz)
			}
			if q := longestQuiet(pcm); q > 20 {
				t.Errorf("a quiet run of %d samples: a gap", q)
			}
			if got := srv.Status().Totals["answered"]; got != 1 {
				t.Errorf("answered total %d", got)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	srv := startServer(t, 5161, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	outsider := newCaller(t, otherIP)
	if code, err := outsider.invite(ctx, srv.addr, offerSDP(otherIP, outsider.port(), "", "0")); err != nil || code != 403 {
		t.Errorf("caller outside the allow-list: %d %v, want 403", code, err)
	}
	c := newCaller(t, hostIP)
	if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "9", "18")); err != nil || code != 488 {
		t.Errorf("offer without PCMU/PCMA: %d %v, want 488", code, err)
	}
	st := srv.Status()
	if st.Totals["forbidden"] != 1 || st.Totals["not_acceptable"] != 1 || st.Active != 0 {
		t.Errorf("status: %+v", st)
	}
}

func TestEmptyAllowListRefusesAll(t *testing.T) {
	var mu sync.Mutex
	var events []string
	srv := startServer(t, 5162, func(o *Options) {
		o.Allow = nil
		o.OnEvent = func(_, m string) { mu.Lock(); events = append(events, m); mu.Unlock() }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newCaller(t, hostIP)
	if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0")); err != nil || code != 403 {
		t.Fatalf("INVITE with no allow-list: %d %v, want 403", code, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || !strings.Contains(events[0], "--sip-allow") {
		t.Errorf("events %q: want one telling the admin to set --sip-allow", events)
	}
}

func TestOptions(t *testing.T) {
	srv := startServer(t, 5163, nil)
	c := newCaller(t, hostIP)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.dua.Client.Do(ctx, sip.NewRequest(sip.OPTIONS, srv.uri()))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %d", res.StatusCode)
	}
	if h := res.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "INVITE") || !strings.Contains(h.Value(), "BYE") {
		t.Errorf("Allow: %v", h)
	}
	if h := res.GetHeader("Accept"); h == nil || h.Value() != "application/sdp" {
		t.Errorf("Accept: %v", h)
	}
}

func TestCancelGets487(t *testing.T) {
	srv := startServer(t, 5164, func(o *Options) { o.AnswerDelay = 2 * time.Second })
	c := newCaller(t, hostIP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	uri := srv.uri()
	sess, err := c.dua.Invite(ctx, uri, offerSDP(hostIP, c.port(), "", "0"), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, wcancel) // after 100 Trying, before the answer
	sess.WaitAnswer(wctx, sipgo.AnswerOptions{})
	if sess.InviteResponse == nil || sess.InviteResponse.StatusCode != 487 {
		t.Fatalf("INVITE after CANCEL: %v, want 487", sess.InviteResponse)
	}
	time.Sleep(2500 * time.Millisecond) // past the answer delay: nothing may be answered
	st := srv.Status()
	if st.Active != 0 || st.Totals["canceled"] != 1 || st.Totals["answered"] != 0 {
		t.Errorf("status after CANCEL: %+v", st)
	}
	if n := len(c.packets()); n != 0 {
		t.Errorf("%d RTP packets to a canceled call", n)
	}
}

func TestMaxCallsBusy(t *testing.T) {
	const max = 100
	srv := startServer(t, 5165, func(o *Options) { o.MaxCalls = max })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callers := make([]*caller, max)
	var wg sync.WaitGroup
	errs := make(chan error, max)
	for i := range callers {
		callers[i] = newCaller(t, hostIP)
		wg.Add(1)
		go func(c *caller) {
			defer wg.Done()
			if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0", "8")); err != nil || code != 200 {
				errs <- fmt.Errorf("INVITE: %d %v", code, err)
			}
		}(callers[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	extra := newCaller(t, hostIP)
	if code, err := extra.invite(ctx, srv.addr, offerSDP(hostIP, extra.port(), "", "0")); err != nil || code != 486 {
		t.Errorf("call %d with max %d: %d %v, want 486", max+1, max, code, err)
	}
	time.Sleep(time.Second)
	for i, c := range callers {
		n0 := len(c.packets())
		_ = n0
		pcm := decode(c.packets())
		if len(pcm) < 40*160 {
			t.Errorf("caller %d: %d samples in >1 s", i, len(pcm))
			continue
		}
		if f := toneFreq(pcm, 8000); math.Abs(f-toneHz) > 2 {
			t.Errorf("caller %d: tone at %.2f Hz", i, f)
		}
	}
	st := srv.Status()
	if st.Active != max || st.Totals["busy"] != 1 || st.Totals["answered"] != max {
		t.Errorf("status: active %d totals %v", st.Active, st.Totals)
	}
	for _, c := range callers {
		wg.Add(1)
		go func(c *caller) { defer wg.Done(); c.bye(ctx) }(c)
	}
	wg.Wait()
	waitFor(t, "all calls to end", 5*time.Second, func() bool { return srv.Status().Active == 0 })
}

func TestReinviteMovesStream(t *testing.T) {
	srv := startServer(t, 5166, nil)
	c := newCaller(t, hostIP)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0", "8")); err != nil || code != 200 {
		t.Fatalf("INVITE: %d %v", code, err)
	}
	time.Sleep(500 * time.Millisecond)
	// Move to a second socket, and to A-law.
	c2 := newCaller(t, hostIP)
	res, err := c.reinvite(ctx, offerSDP(hostIP, c2.port(), "", "8"))
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(res.Body()), "PCMA/8000") {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	time.Sleep(100 * time.Millisecond)
	n1 := len(c.packets())
	time.Sleep(time.Second)
	if extra := len(c.packets()) - n1; extra > 0 {
		t.Errorf("old address still got %d packets after the move", extra)
	}
	p2 := c2.packets()
	if len(p2) < 45 {
		t.Fatalf("new address got %d packets in 1.1 s", len(p2))
	}
	p1 := c.packets()
	last, first := p1[len(p1)-1], p2[0]
	if first.PayloadType != ptPCMA || first.SSRC != last.SSRC || first.SequenceNumber != last.SequenceNumber+1 || !first.Marker {
		t.Errorf("after the move: PT %d SSRC %x seq %d marker %v; before: SSRC %x seq %d",
			first.PayloadType, first.SSRC, first.SequenceNumber, first.Marker, last.SSRC, last.SequenceNumber)
	}
	// Hold: the caller sends sendonly; moh answers inactive and stops.
	res, err = c.reinvite(ctx, offerSDP(hostIP, c2.port(), "sendonly", "8"))
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=inactive") {
		t.Fatalf("hold re-INVITE: %v %v", res, err)
	}
	time.Sleep(100 * time.Millisecond)
	n2 := len(c2.packets())
	time.Sleep(500 * time.Millisecond)
	if extra := len(c2.packets()) - n2; extra > 0 {
		t.Errorf("%d packets while held", extra)
	}
	if st := srv.Status(); st.Active != 1 || st.Calls[0].Media != "" {
		t.Errorf("held call status: %+v", st.Calls)
	}
	c.bye(ctx)
}

func TestRTPTimeoutByes(t *testing.T) {
	srv := startServer(t, 5167, func(o *Options) { o.RTPTimeout = 2 * time.Second })
	c := newCaller(t, hostIP)
	// The caller's own SIP listener, where moh's BYE must arrive.
	byes := make(chan struct{}, 1)
	usrv, err := sipgo.NewServer(c.ua)
	if err != nil {
		t.Fatal(err)
	}
	usrv.OnBye(func(r *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(r, 200, "OK", nil))
		select {
		case byes <- struct{}{}:
		default:
		}
	})
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	go usrv.ListenAndServe(lctx, "udp", hostIP+":5099")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0")); err != nil || code != 200 {
		t.Fatalf("INVITE: %d %v", code, err)
	}
	start := time.Now()
	waitFor(t, "the silent call to be ended", 6*time.Second, func() bool { return srv.Status().Active == 0 })
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("ended after %s, before the 2 s timeout", d)
	}
	select {
	case <-byes:
	case <-time.After(3 * time.Second):
		t.Error("the caller got no BYE")
	}
}

func TestSessionTimerExpires(t *testing.T) {
	srv := startServer(t, 5168, nil)
	c := newCaller(t, hostIP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0"),
		sip.NewHeader("Session-Expires", "30"), sip.NewHeader("Supported", "timer")); err != nil || code != 422 {
		t.Fatalf("Session-Expires 30: %d %v, want 422", code, err)
	}
	c2 := newCaller(t, hostIP)
	if code, err := c2.invite(ctx, srv.addr, offerSDP(hostIP, c2.port(), "", "0"),
		sip.NewHeader("Session-Expires", "90;refresher=uac"), sip.NewHeader("Supported", "timer")); err != nil || code != 200 {
		t.Fatalf("Session-Expires 90: %d %v", code, err)
	}
	if h := c2.sess.InviteResponse.GetHeader("Session-Expires"); h == nil || h.Value() != "90;refresher=uac" {
		t.Errorf("answer's Session-Expires: %v", h)
	}
	if h := c2.sess.InviteResponse.GetHeader("Require"); h == nil || h.Value() != "timer" {
		t.Errorf("answer's Require: %v", h)
	}
	c2.bye(ctx)
	// Without Supported: timer the caller cannot refresh: moh is the
	// refresher and does not Require timers of it.
	c3 := newCaller(t, hostIP)
	if code, err := c3.invite(ctx, srv.addr, offerSDP(hostIP, c3.port(), "", "0"),
		sip.NewHeader("Session-Expires", "120")); err != nil || code != 200 {
		t.Fatalf("Session-Expires without Supported: %d %v", code, err)
	}
	if h := c3.sess.InviteResponse.GetHeader("Session-Expires"); h == nil || h.Value() != "120;refresher=uas" {
		t.Errorf("answer's Session-Expires: %v", h)
	}
	if h := c3.sess.InviteResponse.GetHeader("Require"); h != nil {
		t.Errorf("answer requires %q of a caller without timers", h.Value())
	}
	c3.bye(ctx)
}

// TestDelayedOffer: an INVITE without SDP (as CUCM sends) gets moh's
// offer of PCMU and PCMA, and the stream starts from the answer in the
// ACK, in the codec the caller chose.
func TestDelayedOffer(t *testing.T) {
	srv := startServer(t, 5169, nil)
	c := newCaller(t, hostIP)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	uri := srv.uri()
	sess, err := c.dua.Invite(ctx, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.sess = sess
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("INVITE without SDP: %v", err)
	}
	off := string(sess.InviteResponse.Body())
	if !strings.Contains(off, "RTP/AVP 0 8") || !strings.Contains(off, "a=sendonly") {
		t.Fatalf("moh's offer:\n%s", off)
	}
	ack := sip.NewRequest(sip.ACK, sess.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(offerSDP(hostIP, c.port(), "recvonly", "8"))
	if err := sess.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	pkts := c.packets()
	if len(pkts) < 40 || pkts[0].PayloadType != ptPCMA {
		t.Fatalf("%d packets after the answer in the ACK, want ~50 of PCMA", len(pkts))
	}
	if f := toneFreq(decode(pkts), 8000); math.Abs(f-toneHz) > 2 {
		t.Errorf("tone at %.2f Hz", f)
	}
	c.bye(ctx)
	waitFor(t, "call to end", 3*time.Second, func() bool { return srv.Status().Active == 0 })
}

// pbxListener is the callers' own SIP listener (their Contact,
// hostIP:5099): it answers moh's BYE and UPDATE and counts them by
// Call-ID.
type pbxListener struct {
	mu      sync.Mutex
	byes    map[string]int
	updates map[string]int
}

func listenPBX(t *testing.T) *pbxListener {
	t.Helper()
	l := &pbxListener{byes: map[string]int{}, updates: map[string]int{}}
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	count := func(m map[string]int) sipgo.RequestHandler {
		return func(r *sip.Request, tx sip.ServerTransaction) {
			l.mu.Lock()
			m[r.CallID().Value()]++
			l.mu.Unlock()
			tx.Respond(sip.NewResponseFromRequest(r, 200, "OK", nil))
		}
	}
	srv.OnBye(count(l.byes))
	srv.OnUpdate(count(l.updates))
	ctx, cancel := context.WithCancel(context.Background())
	go srv.ListenAndServe(ctx, "udp", hostIP+":5099")
	t.Cleanup(func() { cancel(); ua.Close() })
	time.Sleep(100 * time.Millisecond)
	return l
}

func (l *pbxListener) got(m map[string]int, c *caller) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return m[c.sess.InviteRequest.CallID().Value()]
}

// TestSessionTimers: a session nobody refreshes ends with BYE before it
// expires (RFC 4028 §10); one the caller refreshes with UPDATE lives on;
// one that names moh the refresher is refreshed by moh's UPDATEs.
func TestSessionTimers(t *testing.T) {
	srv := startServer(t, 5171, func(o *Options) { o.minSE = 1 })
	pbx := listenPBX(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := func(se string) *caller {
		c := newCaller(t, hostIP)
		if code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "", "0"),
			sip.NewHeader("Session-Expires", se), sip.NewHeader("Supported", "timer")); err != nil || code != 200 {
			t.Fatalf("INVITE with Session-Expires %s: %d %v", se, code, err)
		}
		return c
	}
	lapsed, refreshed, mohRefreshes := call("3;refresher=uac"), call("3;refresher=uac"), call("3;refresher=uas")
	stop := make(chan struct{})
	refreshErr := make(chan error, 1)
	go func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				refreshErr <- nil
				return
			case <-tk.C:
				res, err := refreshed.sess.Do(ctx, sip.NewRequest(sip.UPDATE, refreshed.sess.InviteResponse.Contact().Address))
				if err != nil || res.StatusCode != 200 {
					refreshErr <- fmt.Errorf("UPDATE: %v %v", res, err)
					return
				}
			}
		}
	}()
	time.Sleep(4500 * time.Millisecond)
	close(stop)
	if err := <-refreshErr; err != nil {
		t.Fatal(err)
	}
	if n := pbx.got(pbx.byes, lapsed); n != 1 {
		t.Errorf("unrefreshed session: %d BYEs, want 1", n)
	}
	if n := pbx.got(pbx.byes, refreshed); n != 0 {
		t.Errorf("refreshed session got BYE")
	}
	if n := pbx.got(pbx.byes, mohRefreshes); n != 0 {
		t.Errorf("session moh refreshes got BYE")
	}
	if n := pbx.got(pbx.updates, mohRefreshes); n < 2 {
		t.Errorf("moh sent %d UPDATEs in 4.5 s of a 3 s session it refreshes, want 2 or more", n)
	}
	if st := srv.Status(); st.Active != 2 {
		t.Errorf("%d calls active, want the 2 refreshed", st.Active)
	}
	refreshed.bye(ctx)
	mohRefreshes.bye(ctx)
}

// TestPortInUse: a listener that cannot bind is reported (status, event)
// and retried with backoff until the port is free; Run never returns an
// error that would stop mohd.
func TestPortInUse(t *testing.T) {
	addr := hostIP + ":5172"
	ua, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	s, err := New(Options{Addr: addr, Hub: phone.NewHub(), RTPMin: 29000, RTPMax: 29099,
		OnEvent: func(_, m string) { mu.Lock(); events = append(events, m); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	waitFor(t, "the failure in status", 3*time.Second, func() bool {
		st := s.Status()
		return st.State == "failed" && strings.Contains(st.Error, "address already in use")
	})
	mu.Lock()
	if len(events) == 0 || !strings.Contains(events[0], "5172") {
		t.Errorf("events %q: want the listener's failure", events)
	}
	mu.Unlock()
	ua.Close()
	waitFor(t, "the retry to listen", 5*time.Second, func() bool { return s.Status().State == "listening" })
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// The server holds the telephone signal only while someone is on hold:
// with no call the hub has no receiver (so the converter may sleep), a
// call subscribes, its end lets go, and the next call gets audio again.
func TestHubHeldOnlyDuringCalls(t *testing.T) {
	var hub *phone.Hub
	srv := startServer(t, 5172, func(o *Options) { hub = o.Hub })
	time.Sleep(200 * time.Millisecond)
	if !hub.Idle() {
		t.Fatal("the SIP server keeps a receiver on the hub with no call")
	}
	for round := range 2 {
		c := newCaller(t, hostIP)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, err := c.invite(ctx, srv.addr, offerSDP(hostIP, c.port(), "sendrecv", "0"))
		if err != nil || code != 200 {
			cancel()
			t.Fatalf("round %d INVITE: %d %v", round, code, err)
		}
		waitFor(t, "the call to receive the hub", 3*time.Second, func() bool { return !hub.Idle() })
		waitFor(t, "audio", 3*time.Second, func() bool { return len(c.packets()) >= 25 })
		if err := c.bye(ctx); err != nil {
			cancel()
			t.Fatalf("round %d BYE: %v", round, err)
		}
		cancel()
		waitFor(t, "the hub to be let go after the call", 3*time.Second, hub.Idle)
	}
}

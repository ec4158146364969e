package sip

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// answerPort is the m=audio port of moh's answer to c's INVITE.
func answerPort(t *testing.T, c *caller) int {
	t.Helper()
	m := regexp.MustCompile(`m=audio (\d+) `).FindStringSubmatch(string(c.sess.InviteResponse.Body()))
	if m == nil {
		t.Fatalf("no m=audio in the answer:\n%s", c.sess.InviteResponse.Body())
	}
	p, _ := strconv.Atoi(m[1])
	return p
}

// TestMediaFromAdvertisedPort: every call's packets come from the port
// and address its SDP answer names (symmetric RTP peers check that), on
// a server bound to one address and on one bound to the wildcard (a
// dual-stack socket sending to IPv4 callers).
func TestMediaFromAdvertisedPort(t *testing.T) {
	for _, tc := range []struct{ name, bind string }{{"address", hostIP}, {"wildcard", "0.0.0.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			startServer(t, 5174, func(o *Options) { o.Addr = tc.bind + ":5174" })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cs := []*caller{newCaller(t, hostIP), newCaller(t, hostIP)}
			for _, c := range cs {
				if code, err := c.invite(ctx, hostIP+":5174", offerSDP(hostIP, c.port(), "", "0")); err != nil || code != 200 {
					t.Fatalf("INVITE: %d %v", code, err)
				}
			}
			time.Sleep(time.Second)
			ssrcs := map[uint32]bool{}
			for i, c := range cs {
				want := fmt.Sprintf("%s:%d", hostIP, answerPort(t, c))
				c.mu.Lock()
				from, n, all := fmt.Sprint(c.from), c.from[want], len(c.pkts)
				c.mu.Unlock()
				if n < 40 || n != all {
					t.Errorf("caller %d: packets by source %s, want all (>40) from %s", i, from, want)
				}
				if p := c.packets(); len(p) > 0 {
					ssrcs[p[0].SSRC] = true
				}
			}
			if len(ssrcs) != len(cs) {
				t.Errorf("%d SSRCs for %d calls: each call must have its own", len(ssrcs), len(cs))
			}
			for _, c := range cs {
				c.bye(ctx)
			}
		})
	}
}

// rtcpRR is an RTCP receiver report from reporter with one block about
// source (RFC 3550 §6.4.2).
func rtcpRR(reporter, source uint32) []byte {
	b := make([]byte, 32)
	b[0], b[1] = 0x81, 201 // V=2, one report block; RR
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[4:], reporter)
	binary.BigEndian.PutUint32(b[8:], source)
	return b
}

// rtpFrom is a minimal RTP packet from ssrc.
func rtpFrom(ssrc uint32) []byte {
	b := make([]byte, 12+160)
	b[0] = 0x80
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

// TestMediaLiveness: with every call on one media port, what a caller
// sends still keeps its own call alive and no other: RTP from the
// address its SDP gave; RTCP reports about its stream from anywhere (a
// NAT or SBC in between); RTP from anywhere with the SSRC those reports
// came from. A call whose peer sends nothing, or only packets that name
// no call, is ended by the inactivity timeout.
func TestMediaLiveness(t *testing.T) {
	srv := startServer(t, 5175, func(o *Options) { o.RTPTimeout = 2 * time.Second })
	pbx := listenPBX(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := []string{"symmetric RTP", "RTCP via NAT", "RTP via NAT", "silent", "stranger"}
	cs := make([]*caller, len(names))
	for i := range cs {
		cs[i] = newCaller(t, hostIP)
		if code, err := cs[i].invite(ctx, srv.addr, offerSDP(hostIP, cs[i].port(), "", "0")); err != nil || code != 200 {
			t.Fatalf("INVITE: %d %v", code, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	mport := answerPort(t, cs[0])
	rtpAddr := &net.UDPAddr{IP: net.ParseIP(hostIP), Port: mport}
	rtcpAddr := &net.UDPAddr{IP: net.ParseIP(hostIP), Port: mport + 1}
	nat := func() *net.UDPConn { // a socket nobody's SDP names
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(hostIP)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	natRTCP, natRTP, stranger := nat(), nat(), nat()
	ssrcOf := func(c *caller) uint32 {
		p := c.packets()
		if len(p) == 0 {
			t.Fatal("caller got no RTP")
		}
		return p[0].SSRC
	}
	ssrc1, ssrc2 := ssrcOf(cs[1]), ssrcOf(cs[2])
	// The NATed RTP sender's reports teach moh its SSRC first.
	natRTP.WriteToUDP(rtcpRR(0xabc, ssrc2), rtcpAddr)
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		cs[0].rtp.WriteToUDP(rtpFrom(0x111), rtpAddr)
		natRTCP.WriteToUDP(rtcpRR(0x222, ssrc1), rtcpAddr)
		natRTP.WriteToUDP(rtpFrom(0xabc), rtpAddr)
		stranger.WriteToUDP(rtpFrom(0x999), rtpAddr)
		stranger.WriteToUDP(rtcpRR(0x998, 0x12345678), rtcpAddr)
		time.Sleep(300 * time.Millisecond)
	}
	for i, c := range cs {
		gotBye := pbx.got(pbx.byes, c) > 0
		if wantBye := i >= 3; gotBye != wantBye {
			t.Errorf("%s caller: BYE %v after 4 s of a 2 s timeout, want %v", names[i], gotBye, wantBye)
		}
	}
	if st := srv.Status(); st.Active != 3 {
		t.Errorf("%d calls active, want 3", st.Active)
	}
	for _, c := range cs[:3] {
		c.bye(ctx)
	}
}

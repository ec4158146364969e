package phone

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// A unicast RTP stream to a local receiver: payload type, constant SSRC,
// sequence and timestamp continuous from Frame.Seq, marker only on the
// first packet, the payload the frame's G.711.
func TestRTPSenderUnicast(t *testing.T) {
	for _, pt := range []uint8{PayloadPCMU, PayloadPCMA} {
		ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewRTPSender(RTPOptions{Addr: ln.LocalAddr().String(), PayloadType: pt, TTL: 16, DSCP: 46})
		if err != nil {
			t.Fatal(err)
		}
		hub := NewHub()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, hub) }()
		for hub.Attached() == 0 {
			time.Sleep(time.Millisecond)
		}
		var sent []*Frame
		for i := range 20 {
			f := new(Frame)
			f.ULaw[0], f.ALaw[0] = byte(i), byte(100+i)
			hub.Publish(f)
			sent = append(sent, f)

		}
		buf := make([]byte, 1500)
		var prev *rtp.Packet
		for i := range 20 {
			ln.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := ln.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			var p rtp.Packet
			if err := p.Unmarshal(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if p.PayloadType != pt || len(p.Payload) != FrameSamples {
				t.Fatalf("packet %d: PT %d, %d bytes", i, p.PayloadType, len(p.Payload))
			}
			want := sent[i].ULaw[0]
			if pt == PayloadPCMA {
				want = sent[i].ALaw[0]
			}
			if p.Payload[0] != want {
				t.Fatalf("packet %d carries %d, want %d", i, p.Payload[0], want)
			}
			if p.Marker != (i == 0) {
				t.Fatalf("packet %d: marker %v", i, p.Marker)
			}
			if prev != nil {
				if p.SSRC != prev.SSRC || p.SequenceNumber != prev.SequenceNumber+1 || p.Timestamp != prev.Timestamp+FrameSamples {
					t.Fatalf("packet %d: ssrc %x seq %d ts %d after ssrc %x seq %d ts %d", i, p.SSRC, p.SequenceNumber, p.Timestamp, prev.SSRC, prev.SequenceNumber, prev.Timestamp)
				}
			}
			prev = &p
		}
		cancel()
		<-done
		ln.Close()
		st := s.Status()
		if st.Packets != 20 || st.SendErrors != 0 || st.State != "ok" {
			t.Fatalf("status %+v", st)
		}
	}
}

// The socket carries DSCP EF and the TTL asked for.
func TestRTPSocketOptions(t *testing.T) {
	for _, tc := range []struct {
		addr string
		opt  int
	}{{"127.0.0.1:9", syscall.IP_TTL}, {"239.1.2.3:9", syscall.IP_MULTICAST_TTL}} {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr)))
		if err != nil {
			t.Fatal(err)
		}
		if err := setSockOpts(c, net.ParseIP(tc.addr[:len(tc.addr)-2]), 7, 46, nil); err != nil {
			t.Fatal(err)
		}
		rc, _ := c.SyscallConn()
		var tos, ttl int
		rc.Control(func(fd uintptr) {
			tos, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TOS)
			ttl, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, tc.opt)
		})
		c.Close()
		if tos != 46<<2 || ttl != 7 {
			t.Fatalf("%s: TOS %#x TTL %d, want %#x and 7", tc.addr, tos, ttl, 46<<2)
		}
	}
}

// A destination that cannot be reached is counted and retried, never
// fatal.
func TestRTPSenderFailsAndRetries(t *testing.T) {
	s, err := NewRTPSender(RTPOptions{Addr: "127.0.0.1:9", PayloadType: 0, Iface: "nosuchif0", Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, hub) }()
	for hub.Attached() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 10 {
		hub.Publish(new(Frame))
		time.Sleep(5 * time.Millisecond)
	}
	st := s.Status()
	if st.State != "failed" || st.Packets != 0 || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

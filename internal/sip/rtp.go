package sip

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/mohproject/moh/internal/phone"
)

// Each call gets its own RTP socket (an even port of the range) and RTCP
// socket (the odd port above it, RFC 3550 §11). One socket per call rather
// than one shared: whatever arrives on a call's ports is that call's, so
// RTP/RTCP liveness is attributed without trusting source addresses
// (peers behind SBCs and NAT often send media from elsewhere than their
// SDP says), and a peer flooding one port cannot starve the others' reads.
// 200 calls cost 400 descriptors, far below the limit.
type portPool struct {
	mu       sync.Mutex
	ip       net.IP
	min, max int // even min, inclusive max
	next     int
}

func newPortPool(ip net.IP, min, max int) *portPool {
	if min%2 == 1 {
		min++
	}
	return &portPool{ip: ip, min: min, max: max, next: min}
}

// open binds the next free even/odd pair, walking the range once.
func (p *portPool) open() (rtpc, rtcpc *net.UDPConn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := (p.max - p.min + 1) / 2
	for i := 0; i < n; i++ {
		port := p.next
		p.next += 2
		if p.next+1 > p.max {
			p.next = p.min
		}
		a, err := net.ListenUDP("udp", &net.UDPAddr{IP: p.ip, Port: port})
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp", &net.UDPAddr{IP: p.ip, Port: port + 1})
		if err != nil {
			a.Close()
			continue
		}
		return a, b, nil
	}
	return nil, nil, fmt.Errorf("no free RTP port pair in %d-%d", p.min, p.max)
}

// stream sends one call's RTP: the hub's frames, packetised with the
// call's own SSRC, sequence and timestamp. Its destination and codec can
// change under it (re-INVITE) without a break in sequence or timestamp.
type stream struct {
	rtpc, rtcpc *net.UDPConn
	ssrc        uint32
	seq         uint16
	ts          uint32

	mu      sync.Mutex
	dest    netip.AddrPort // invalid: not sending (hold)
	codec   Codec
	marker  bool // next packet starts a talkspurt (new destination)
	lastHub uint64
	started bool

	sent      atomic.Uint64
	lastHeard atomic.Int64 // unix nanos of the last packet from the peer
}

func newStream(rtpc, rtcpc *net.UDPConn) *stream {
	var b [10]byte
	rand.Read(b[:])
	return &stream{
		rtpc: rtpc, rtcpc: rtcpc,
		ssrc: binary.BigEndian.Uint32(b[0:4]),
		seq:  binary.BigEndian.Uint16(b[4:6]),
		ts:   binary.BigEndian.Uint32(b[6:10]),
	}
}

func (s *stream) port() int { return s.rtpc.LocalAddr().(*net.UDPAddr).Port }

// set moves the stream (a re-INVITE): the next packet goes to dest in
// codec, with the marker bit so the new receiver resynchronises.
func (s *stream) set(dest netip.AddrPort, send bool, c Codec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !send || !dest.IsValid() || dest.Port() == 0 || dest.Addr().IsUnspecified() {
		dest = netip.AddrPort{}
	}
	if dest != s.dest {
		s.marker = true
	}
	s.dest, s.codec = dest, c
}

// send packetises f for this call into buf and sends it. The server's
// fan-out calls it for every call in turn, from one goroutine, so buf and
// pkt are shared and packetising allocates nothing.
func (s *stream) send(f *phone.Frame, buf []byte, pkt *rtp.Packet) {
	s.mu.Lock()
	// Timestamps follow the hub's clock, so a frame the queue dropped
	// shows as a timestamp jump, not as audio played early.
	if s.started {
		s.ts += uint32(f.Seq-s.lastHub) * phone.FrameSamples
	}
	s.started, s.lastHub = true, f.Seq
	dest, codec, marker := s.dest, s.codec, s.marker
	if !dest.IsValid() {
		s.mu.Unlock()
		return
	}
	s.marker = false
	*pkt = rtp.Packet{Header: rtp.Header{Version: 2, SSRC: s.ssrc, Marker: marker,
		PayloadType: codec.PT, SequenceNumber: s.seq, Timestamp: s.ts}}
	s.seq++
	s.mu.Unlock()
	if codec.Name == "PCMA" {
		pkt.Payload = f.ALaw[:]
	} else {
		pkt.Payload = f.ULaw[:]
	}
	n, err := pkt.MarshalTo(buf)
	if err != nil {
		return
	}
	if _, err := s.rtpc.WriteToUDPAddrPort(buf[:n], dest); err == nil {
		s.sent.Add(1)
	}
}

// listen notes the time of every packet from the peer on the RTP or RTCP
// port, for the inactivity timeout; the content is not needed.
func (s *stream) listen(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.lastHeard.Store(time.Now().UnixNano())
	}
}

func (s *stream) close() {
	s.rtpc.Close()
	s.rtcpc.Close()
}

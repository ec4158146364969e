package sip

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"

	"github.com/mohproject/moh/internal/phone"
)

// stream is one call's RTP: the hub's frames, packetised with the call's
// own SSRC, sequence and timestamp, sent from the server's shared media
// socket (media). Its destination and codec can change under it
// (re-INVITE) without a break in sequence or timestamp.
type stream struct {
	ssrc uint32

	mu      sync.Mutex
	seq     uint16
	ts      uint32
	dest    netip.AddrPort // invalid: not sending (hold)
	peer    netip.AddrPort // the caller's media address, sending or not, for attributing what it sends
	codec   Codec
	marker  bool // next packet starts a talkspurt (new destination)
	lastHub uint64
	started bool
	stopped bool // the call ended: never send again

	sent      atomic.Uint64
	lastHeard atomic.Int64 // unix nanos of the last RTP or RTCP packet from the peer
}

func newStream() *stream {
	var b [10]byte
	rand.Read(b[:])
	return &stream{
		ssrc: binary.BigEndian.Uint32(b[0:4]),
		seq:  binary.BigEndian.Uint16(b[4:6]),
		ts:   binary.BigEndian.Uint32(b[6:10]),
	}
}

// set moves the stream (a re-INVITE): the next packet goes to dest in
// codec, with the marker bit so the new receiver resynchronises. It
// returns the caller's media address before and after, for the media
// socket's attribution of incoming packets.
func (s *stream) set(dest netip.AddrPort, send bool, c Codec) (oldPeer, newPeer netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldPeer = s.peer
	s.peer = netip.AddrPort{}
	if dest.IsValid() && dest.Port() != 0 && !dest.Addr().IsUnspecified() {
		s.peer = dest
	}
	if !send {
		dest = netip.AddrPort{}
	} else {
		dest = s.peer
	}
	if dest != s.dest {
		s.marker = true
	}
	s.dest, s.codec = dest, c
	return oldPeer, s.peer
}

// stop ends the stream for good: no packet is built after it returns.
func (s *stream) stop() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped, s.dest = true, netip.AddrPort{}
	return s.peer
}

// next advances the stream by frame f and writes its RTP header into
// hdr (12 bytes), returning where the packet goes and its payload; an
// invalid address means no packet this frame (on hold, or ended). The header is
// built in place in the media socket's batch buffer and the payload is
// the frame's own G.711, encoded once for every caller.
func (s *stream) next(f *phone.Frame, hdr []byte) (netip.AddrPort, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Timestamps follow the hub's clock, so a frame the queue dropped
	// shows as a timestamp jump, not as audio played early.
	if s.started {
		s.ts += uint32(f.Seq-s.lastHub) * phone.FrameSamples
	}
	s.started, s.lastHub = true, f.Seq
	if s.stopped || !s.dest.IsValid() {
		return netip.AddrPort{}, nil
	}
	h := rtp.Header{Version: 2, SSRC: s.ssrc, Marker: s.marker,
		PayloadType: s.codec.PT, SequenceNumber: s.seq, Timestamp: s.ts}
	if _, err := h.MarshalTo(hdr); err != nil {
		return netip.AddrPort{}, nil // cannot happen: a plain header fits 12 bytes
	}
	s.marker = false
	s.seq++
	if s.codec.Name == "PCMA" {
		return s.dest, f.ALaw[:]
	}
	return s.dest, f.ULaw[:]
}

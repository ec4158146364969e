package sip

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mohproject/moh/internal/phone"
)

// media is the server's RTP endpoint: one socket pair of the port range
// (RTP on the even port, RTCP on the odd one above it) that every call's
// SDP names and every call's packets leave from, so symmetric RTP peers
// see the port they were told. Each 20 ms frame of the hub becomes one
// sendmmsg of all callers' packets (batchSock): every header is built in
// place in one reused buffer and every payload is the frame's G.711,
// encoded once. (A socket and a sendto per caller measured 0.072-0.075 %
// of a core per caller, most of it the kernel's per-packet send path
// and the poller's wake-ups for it.)
//
// Sharing the port means what arrives on it is no longer a call's by the
// port it came to. A packet is the call's when it comes from the
// caller's media address as its SDP gives it (RTP, or RTCP from the port
// above), or when it is an RTCP report about the call's SSRC, or RTP
// with the SSRC such a report came from: peers behind SBCs and NAT often
// send from elsewhere than their SDP says, and a receiver report names
// the stream it is about wherever it comes from. Nothing of a packet
// but that is read; a flood on the port can at worst make the calls'
// inactivity timers see less.
type media struct {
	rtp   *batchSock
	rtcpc *net.UDPConn
	wg    sync.WaitGroup // the fan-out and the readers, which close waits for

	// streams is every call's stream, for the fan-out; replaced whole on
	// change (copy on write) so the 50 Hz loop reads it without a lock.
	streams atomic.Pointer[[]*stream]

	mu       sync.Mutex
	byAddr   map[netip.AddrPort]*stream // callers' RTP and RTCP source addresses
	bySSRC   map[uint32]*stream         // moh's SSRC of each call
	byPeer   map[uint32]*stream         // the callers' own SSRCs, learnt from their reports
	reporter map[*stream]uint32         // each stream's entry in byPeer, one at most
	sendErrs atomic.Uint64

	// called is signalled by add: the fan-out subscribes to the hub only
	// while there are calls, so a box with a sip output and nobody on
	// hold lets the telephone converter sleep (phone.Hub.Idle).
	called chan struct{}

	// The fan-out's batch, reused frame after frame (one goroutine):
	// every header in one buffer, and whose packet each message is.
	hdrs  []byte
	owner []*stream
}

// newMedia takes a port pair from ports for the life of the listeners.
func newMedia(ports *portPool) (*media, error) {
	rtpc, rtcpc, err := ports.open()
	if err != nil {
		return nil, err
	}
	b, err := newBatchSock(rtpc)
	if err != nil {
		rtcpc.Close()
		return nil, err
	}
	return &media{rtp: b, rtcpc: rtcpc,
		byAddr: map[netip.AddrPort]*stream{}, bySSRC: map[uint32]*stream{},
		byPeer: map[uint32]*stream{}, reporter: map[*stream]uint32{},
		called: make(chan struct{}, 1)}, nil
}

// port is the RTP port every call's SDP names.
func (m *media) port() int { return m.rtp.port }

// start sends the hub's frames until ctx ends and notes what peers send
// until close.
func (m *media) start(ctx context.Context, hub *phone.Hub) {
	m.wg.Add(3)
	go func() { defer m.wg.Done(); m.fanout(ctx, hub) }()
	go func() {
		defer m.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, src, ok := m.rtp.read(buf)
			if !ok {
				return
			}
			m.heard(src, buf[:n])
		}
	}()
	go func() {
		defer m.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, src, err := m.rtcpc.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				m.heard(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), buf[:n])
			}
		}
	}()
}

// close ends the readers and frees the sockets once nothing uses them
// (the RTP descriptor must not be reused under a sendmmsg in flight).
// The context given to start must be done.
func (m *media) close() {
	m.rtp.shutdown()
	m.rtcpc.Close()
	m.wg.Wait()
	m.rtp.close()
}

// fanout sends every frame of the hub to every call: one subscription,
// one goroutine and one batch for all calls, so a frame costs one
// wake-up and one system call. (A subscription per call measured
// 0.06-0.07 % of a core per caller, most of it the scheduler waking a
// hundred goroutines fifty times a second.) The subscription lasts while
// there are calls: with none the hub may go idle and the converter sleep.
func (m *media) fanout(ctx context.Context, hub *phone.Hub) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.called:
		}
		m.fanoutWhileCalls(ctx, hub)
	}
}

// fanoutWhileCalls subscribes and sends until a frame finds no call left
// or ctx ends. A call added after that frame signals called again, so
// fanout subscribes anew.
func (m *media) fanoutWhileCalls(ctx context.Context, hub *phone.Hub) {
	sub := hub.Subscribe("sip", 8)
	defer sub.Close()
	defer context.AfterFunc(ctx, sub.Close)() // Close ends the range below
	for f := range sub.C() {
		if !m.send(f) {
			return
		}
	}
}

// send packetises f for every stream and sends the batch; false when
// there is no stream to send to.
func (m *media) send(f *phone.Frame) bool {
	p := m.streams.Load()
	if p == nil || len(*p) == 0 {
		return false
	}
	sts := *p
	if len(sts) > len(m.owner) {
		m.hdrs = make([]byte, 12*2*len(sts))
		m.owner = make([]*stream, 2*len(sts))
	}
	m.rtp.grow(len(sts))
	n := 0
	for _, st := range sts {
		hdr := m.hdrs[12*n : 12*n+12]
		dest, payload := st.next(f, hdr)
		if !dest.IsValid() {
			continue
		}
		if !m.rtp.set(n, dest, hdr, payload) {
			m.sendErrs.Add(1)
			continue
		}
		m.owner[n] = st
		n++
	}
	if failed := m.rtp.send(n, func(i int) { m.owner[i].sent.Add(1) }); failed > 0 {
		m.sendErrs.Add(uint64(failed))
	}
	clear(m.owner[:n]) // a stream ended meanwhile is not kept alive here
	return true
}

// add joins st to the fan-out; remove takes it out.
func (m *media) add(st *stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var old []*stream
	if p := m.streams.Load(); p != nil {
		old = *p
	}
	next := append(append(make([]*stream, 0, len(old)+1), old...), st)
	m.streams.Store(&next)
	m.bySSRC[st.ssrc] = st
	select {
	case m.called <- struct{}{}:
	default:
	}
}

func (m *media) remove(st *stream) {
	peer := st.stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.streams.Load(); p != nil {
		next := make([]*stream, 0, len(*p))
		for _, x := range *p {
			if x != st {
				next = append(next, x)
			}
		}
		m.streams.Store(&next)
	}
	m.unmapLocked(st, peer)
	delete(m.bySSRC, st.ssrc)
	if r, ok := m.reporter[st]; ok && m.byPeer[r] == st {
		delete(m.byPeer, r)
	}
	delete(m.reporter, st)
}

// moved updates the attribution of incoming packets after st.set.
func (m *media) moved(st *stream, oldPeer, newPeer netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unmapLocked(st, oldPeer)
	if newPeer.IsValid() {
		m.byAddr[newPeer] = st
		m.byAddr[netip.AddrPortFrom(newPeer.Addr(), newPeer.Port()+1)] = st
	}
}

func (m *media) unmapLocked(st *stream, peer netip.AddrPort) {
	if !peer.IsValid() {
		return
	}
	for _, a := range []netip.AddrPort{peer, netip.AddrPortFrom(peer.Addr(), peer.Port()+1)} {
		if m.byAddr[a] == st {
			delete(m.byAddr, a)
		}
	}
}

// heard notes the time of a packet a call's peer sent, for the
// inactivity timeout; the content is read only to tell whose it is.
func (m *media) heard(src netip.AddrPort, b []byte) {
	if st := m.whose(src, b); st != nil {
		st.lastHeard.Store(time.Now().UnixNano())
	}
}

// whose returns the call packet b from src belongs to, or nil.
func (m *media) whose(src netip.AddrPort, b []byte) *stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.byAddr[src]; st != nil {
		return st
	}
	if len(b) < 12 || b[0]>>6 != 2 {
		return nil
	}
	// RFC 5761 §4: RTCP packet types 200-204 sit where RTP has the
	// marker bit and payload types 72-76, which no audio stream uses.
	if pt := b[1]; pt < 200 || pt > 204 {
		return m.byPeer[binary.BigEndian.Uint32(b[8:12])]
	}
	return m.fromReportLocked(b)
}

// fromReportLocked walks an RTCP compound packet (RFC 3550 §6.4) for a
// sender or receiver report with a block about one of moh's streams,
// and learns the reporter's SSRC for the RTP it may send.
func (m *media) fromReportLocked(b []byte) *stream {
	for len(b) >= 8 {
		words := int(binary.BigEndian.Uint16(b[2:4]))
		size := 4 * (words + 1)
		if b[0]>>6 != 2 || size > len(b) {
			return nil
		}
		pkt := b[:size]
		b = b[size:]
		count := int(pkt[0] & 0x1f)
		var blocks []byte
		switch pkt[1] {
		case 200: // SR: header, sender SSRC, 20 bytes of sender info
			if len(pkt) >= 28 {
				blocks = pkt[28:]
			}
		case 201: // RR: header, sender SSRC
			blocks = pkt[8:]
		}
		for i := 0; i < count && len(blocks) >= 24*(i+1); i++ {
			if st := m.bySSRC[binary.BigEndian.Uint32(blocks[24*i:])]; st != nil {
				// One learnt SSRC per call: a peer changing its SSRC
				// replaces it, and the map never outgrows the calls.
				if old, ok := m.reporter[st]; ok && m.byPeer[old] == st {
					delete(m.byPeer, old)
				}
				r := binary.BigEndian.Uint32(pkt[4:8])
				m.byPeer[r], m.reporter[st] = st, r
				return st
			}
		}
	}
	return nil
}

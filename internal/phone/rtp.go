package phone

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"
)

// G.711 RTP payload types (RFC 3551).
const (
	PayloadPCMU = 0
	PayloadPCMA = 8
)

// RTPOptions configure an RTPSender.
type RTPOptions struct {
	Addr        string // destination "IP:PORT", multicast or unicast
	PayloadType uint8  // PayloadPCMU or PayloadPCMA
	TTL         int    // IP_MULTICAST_TTL (multicast) or IP_TTL (unicast); 0 means 16
	DSCP        int    // DiffServ code point put in IP_TOS (46 is EF, what voice uses)
	Iface       string // interface multicast leaves by; "" lets the kernel choose
	Logger      *slog.Logger
	// Backoff and BackoffMax bound the wait before the socket is opened
	// again after it failed; zero means 250 ms and 30 s.
	Backoff, BackoffMax time.Duration
}

// RTPStatus is what status and metrics show of a sender.
type RTPStatus struct {
	State      string // "ok", "failed" (down; reopening with backoff) or "retrying" (opening)
	LastError  string
	Packets    uint64 // packets sent
	SendErrors uint64
	SSRC       uint32
}

// RTPSender sends the hub's frames as an RTP stream: one packet per 20 ms
// frame, sent the moment the pacer publishes it, with a constant random
// SSRC and sequence numbers and timestamps derived from Frame.Seq, so
// they run on across tracks, loop points, silence and socket reopens.
type RTPSender struct {
	o       RTPOptions
	log     *slog.Logger
	ssrc    uint32
	seqBase uint16
	tsBase  uint32

	packets atomic.Uint64
	errs    atomic.Uint64

	mu      sync.Mutex // the hub's goroutine sends, Status reads
	state   string
	lastErr string
	conn    *net.UDPConn
	first   bool // the next packet is the stream's first: marker set
	buf     []byte
	backoff time.Duration
	retryAt time.Time
	healthy int // packets sent since the last failure
}

// NewRTPSender checks o and returns a sender; Run sends.
func NewRTPSender(o RTPOptions) (*RTPSender, error) {
	if o.PayloadType != PayloadPCMU && o.PayloadType != PayloadPCMA {
		return nil, fmt.Errorf("rtp: payload type %d: want 0 (PCMU) or 8 (PCMA)", o.PayloadType)
	}
	if _, err := net.ResolveUDPAddr("udp", o.Addr); err != nil {
		return nil, fmt.Errorf("rtp: address %q: %w", o.Addr, err)
	}
	if o.TTL == 0 {
		o.TTL = 16
	}
	if o.DSCP < 0 || o.DSCP > 63 {
		return nil, fmt.Errorf("rtp: dscp %d: want 0..63", o.DSCP)
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("rtp: random SSRC: %w", err)
	}
	return &RTPSender{
		o:       o,
		log:     o.Logger.With("component", "rtp", "addr", o.Addr),
		ssrc:    binary.BigEndian.Uint32(r[0:4]),
		seqBase: binary.BigEndian.Uint16(r[4:6]),
		tsBase:  uint32(binary.BigEndian.Uint16(r[6:8])) << 8,
		state:   "retrying",
		first:   true,
		buf:     make([]byte, 12+FrameSamples),
	}, nil
}

// Status returns the sender's state and counters.
func (s *RTPSender) Status() RTPStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return RTPStatus{State: s.state, LastError: s.lastErr, Packets: s.packets.Load(), SendErrors: s.errs.Load(), SSRC: s.ssrc}
}

// Run sends every frame hub publishes until ctx ends. A socket that
// cannot be opened or fails to send is reopened with backoff; the frames
// of that time are not sent (a late packet is no use to a phone).
//
// The packet leaves in the pacer's goroutine the moment its frame is due
// (Hub.Attach): a queue and a goroutine of its own between them would add
// the scheduler's latency to every packet's timing.
func (s *RTPSender) Run(ctx context.Context, hub *Hub) error {
	detach := hub.Attach(s.send)
	<-ctx.Done()
	detach()
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.mu.Unlock()
	return nil
}

// send sends f as one packet; the hub calls it, one frame at a time.
func (s *RTPSender) send(f *Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		if time.Now().Before(s.retryAt) {
			return
		}
		c, err := s.open()
		if err != nil {
			s.failLocked("rtp: open socket", err)
			return
		}
		s.conn = c
	}
	h := rtp.Header{
		Version:        2,
		Marker:         s.first, // the start of the stream, never again
		PayloadType:    s.o.PayloadType,
		SequenceNumber: s.seqBase + uint16(f.Seq),
		Timestamp:      s.tsBase + uint32(f.Seq)*FrameSamples,
		SSRC:           s.ssrc,
	}
	n, err := h.MarshalTo(s.buf)
	if err != nil {
		s.failLocked("rtp: header", err) // cannot happen: the buffer fits a plain header
		return
	}
	if s.o.PayloadType == PayloadPCMA {
		n += copy(s.buf[n:], f.ALaw[:])
	} else {
		n += copy(s.buf[n:], f.ULaw[:])
	}
	if _, err := s.conn.Write(s.buf[:n]); err != nil {
		s.errs.Add(1)
		s.conn.Close()
		s.conn = nil
		s.healthy = 0
		s.failLocked("rtp: send", err)
		return
	}
	s.first = false
	s.packets.Add(1)
	s.healthy++
	if s.healthy == 50 {
		s.backoff = 0 // a second of packets: the next failure starts the backoff over
	}
	if s.state != "ok" {
		if s.lastErr != "" {
			s.log.Info("rtp output sending again")
		}
		s.state = "ok"
	}
}

// failLocked records a failure and schedules the reopen, logging only a
// change of error, so a dead network does not fill the journal on flash.
func (s *RTPSender) failLocked(what string, err error) {
	err = fmt.Errorf("%s: %w", what, err)
	s.backoff = min(max(2*s.backoff, s.o.Backoff), s.o.BackoffMax)
	s.retryAt = time.Now().Add(s.backoff)
	if err.Error() != s.lastErr {
		s.log.Error("rtp output failed; retrying", "err", err, "retry_in", s.backoff)
	}
	s.state = "failed"
	s.lastErr = err.Error()
}

// open dials the destination and sets the socket's TTL, DSCP and
// multicast interface.
func (s *RTPSender) open() (*net.UDPConn, error) {
	raddr, err := net.ResolveUDPAddr("udp", s.o.Addr)
	if err != nil {
		return nil, err
	}
	var ifi *net.Interface
	if s.o.Iface != "" {
		if ifi, err = net.InterfaceByName(s.o.Iface); err != nil {
			return nil, fmt.Errorf("iface %q: %w", s.o.Iface, err)
		}
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	if err := setSockOpts(conn, raddr.IP, s.o.TTL, s.o.DSCP, ifi); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func setSockOpts(conn *net.UDPConn, dst net.IP, ttl, dscp int, ifi *net.Interface) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	v4 := dst.To4() != nil
	var serr error
	err = rc.Control(func(fd uintptr) {
		set := func(level, opt, v int, name string) {
			if serr == nil {
				if e := syscall.SetsockoptInt(int(fd), level, opt, v); e != nil {
					serr = fmt.Errorf("%s: %w", name, e)
				}
			}
		}
		if v4 {
			set(syscall.IPPROTO_IP, syscall.IP_TOS, dscp<<2, "IP_TOS")
			if dst.IsMulticast() {
				set(syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL")
				set(syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 1, "IP_MULTICAST_LOOP")
				if ifi != nil && serr == nil {
					mreq := &syscall.IPMreqn{Ifindex: int32(ifi.Index)}
					if e := syscall.SetsockoptIPMreqn(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, mreq); e != nil {
						serr = fmt.Errorf("IP_MULTICAST_IF: %w", e)
					}
				}
			} else {
				set(syscall.IPPROTO_IP, syscall.IP_TTL, ttl, "IP_TTL")
			}
			return
		}
		set(syscall.IPPROTO_IPV6, syscall.IPV6_TCLASS, dscp<<2, "IPV6_TCLASS")
		if dst.IsMulticast() {
			set(syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS")
			if ifi != nil {
				set(syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, ifi.Index, "IPV6_MULTICAST_IF")
			}
		} else {
			set(syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, ttl, "IPV6_UNICAST_HOPS")
		}
	})
	return errors.Join(err, serr)
}

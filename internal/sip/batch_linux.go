package sip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSock is the media port's RTP socket, taken out of Go's network
// poller and written with sendmmsg: all callers' packets of one frame in
// one system call. Out of the poller, because a socket the poller
// watches has the kernel run its wake-up callback for every packet it
// sends (the send buffer frees room) and the poller wake to collect it;
// with a hundred callers that bookkeeping cost as much as the batching
// saved. The socket is blocking with timeouts instead: a send waits at
// most 20 ms for room (a late packet is no use) and a read returns every
// second so close is never stuck.
type batchSock struct {
	fd     int
	v6     bool // AF_INET6 (dual stack on the wildcard): IPv4 peers as v4-mapped addresses
	port   int
	closed atomic.Bool

	// The batch, reused frame after frame by the one sending goroutine.
	hdrs []unix.Mmsghdr
	iov  []unix.Iovec            // two per message: header, payload
	sa   []unix.RawSockaddrInet6 // room for either family
}

// newBatchSock takes c's socket over (c is closed; the socket lives on
// in a descriptor of its own).
func newBatchSock(c *net.UDPConn) (*batchSock, error) {
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).Port
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("rtp socket: %w", derr)
	}
	b := &batchSock{fd: fd, port: port}
	sndTO, rcvTO := unix.NsecToTimeval(int64(20*time.Millisecond)), unix.NsecToTimeval(int64(time.Second))
	err = errors.Join(
		unix.SetNonblock(fd, false),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &sndTO),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &rcvTO),
		// A frame's packets leave in one burst: room for 200 callers'
		// (capped by net.core.wmem_max).
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20))
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtp socket: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtp socket: %w", err)
	}
	_, b.v6 = sa.(*unix.SockaddrInet6)
	return b, nil
}

// grow makes room for n messages.
func (b *batchSock) grow(n int) {
	if n <= len(b.hdrs) {
		return
	}
	n *= 2
	b.hdrs = make([]unix.Mmsghdr, n)
	b.iov = make([]unix.Iovec, 2*n)
	b.sa = make([]unix.RawSockaddrInet6, n)
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.sa[i]))
		h.Iov = &b.iov[2*i]
		h.SetIovlen(2)
	}
}

// set makes message i the packet hdr+payload to dest. It is false for
// an IPv6 caller on a socket bound to an IPv4 address, which cannot
// reach it.
func (b *batchSock) set(i int, dest netip.AddrPort, hdr, payload []byte) bool {
	a := dest.Addr().Unmap()
	if !b.v6 && !a.Is4() {
		return false
	}
	b.iov[2*i].Base, b.iov[2*i+1].Base = &hdr[0], &payload[0]
	b.iov[2*i].SetLen(len(hdr))
	b.iov[2*i+1].SetLen(len(payload))
	sa := &b.sa[i]
	port := dest.Port()
	if b.v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dest.Addr().As16()}
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	} else {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	}
	// sin_port and sin6_port sit at the same offset, in network order.
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return true
}

// send sends messages 0..n-1 and calls sent(i) for each one the kernel
// took. sendmmsg stops at the first message it cannot send; that one is
// skipped (the kernel refused that caller's address: no route, a
// firewall) and the rest go on. It returns how many were not sent.
func (b *batchSock) send(n int, sent func(i int)) (failed int) {
	for i := 0; i < n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(b.fd),
			uintptr(unsafe.Pointer(&b.hdrs[i])), uintptr(n-i), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN || e == unix.EBADF:
			// The send buffer stayed full for 20 ms, or the socket is
			// closed: the rest of this frame is too late.
			return failed + n - i
		case e != 0:
			failed++
			i++
			continue
		}
		k := int(r)
		for j := i; j < i+k; j++ {
			sent(j)
		}
		if k == 0 {
			return failed + n - i
		}
		i += k
	}
	return failed
}

// read waits for the next packet into buf; ok is false once closed.
func (b *batchSock) read(buf []byte) (n int, from netip.AddrPort, ok bool) {
	for !b.closed.Load() {
		n, sa, err := unix.Recvfrom(b.fd, buf, 0)
		if err != nil || sa == nil {
			continue // the second's timeout, or the shutdown of close
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		}
		return n, from, true
	}
	return 0, netip.AddrPort{}, false
}

// shutdown wakes a blocked read for good; close then frees the socket,
// once nothing sends or reads on it any more.
func (b *batchSock) shutdown() {
	b.closed.Store(true)
	unix.Shutdown(b.fd, unix.SHUT_RDWR)
}

func (b *batchSock) close() { unix.Close(b.fd) }

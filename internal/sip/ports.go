package sip

import (
	"fmt"
	"net"
	"sync"
)

// portPool hands out even/odd port pairs of the configured range (RTP on
// the even port, RTCP on the odd one above it, RFC 3550 §11). The server
// takes one pair for all its calls each time its listeners start (see
// media); a pair in use by another program is skipped.
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

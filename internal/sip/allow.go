package sip

import (
	"fmt"
	"net/netip"

	"github.com/emiago/sipgo/sip"
)

// ParseAllow reads a comma-separated list of CIDRs or bare addresses.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("sip allow-list entry %q: want a CIDR (10.0.0.0/8) or an address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (s *Server) allowed(src netip.Addr) bool {
	for _, p := range s.opt.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

func sourceAddr(r *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

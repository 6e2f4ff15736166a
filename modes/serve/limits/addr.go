package limits

import (
	"fmt"
	"net/netip"
	"strings"
)

// AddrKey is the key a source address counts under: the address itself
// for IPv4, its /64 for IPv6 (one host usually holds a whole /64, as
// ergo's default cidr-len-ipv6 assumes). An IPv4 address mapped into IPv6
// counts as the IPv4 address. An invalid address counts as "unknown".
func AddrKey(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// Exempt is a list of networks to which no limit applies.
type Exempt []netip.Prefix

// ParseExempt reads CIDRs ("127.0.0.0/8", "fd00::/8") or single addresses
// ("192.0.2.7", a /32 or /128).
func ParseExempt(list []string) (Exempt, error) {
	var e Exempt
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("exempt address %q: %w", s, err)
			}
			ip = ip.Unmap()
			e = append(e, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("exempt network %q: %w", s, err)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("exempt network %q: an IPv4-mapped prefix needs at least /96", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		e = append(e, p.Masked())
	}
	return e, nil
}

// Contains reports whether ip is in one of the networks.
func (e Exempt) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range e {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// String lists the networks, comma-separated ("none" when empty).
func (e Exempt) String() string {
	if len(e) == 0 {
		return "none"
	}
	s := make([]string, len(e))
	for i, p := range e {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

package xfer

import (
	"net"
	"net/netip"
	"strconv"
)

// What a client can tell about the network it is in, from its own
// addresses and what the server observed of its connection (like
// `tailscale netcheck`, with one server to ask).

// NAT kinds, as NATKind reports them.
const (
	NATNone          = "none"            // the server saw one of our own addresses: no NAT (maybe a firewall)
	NATPortKept      = "port-preserving" // a NAT that kept our peer port: it maps by endpoint, holes can be punched
	NATPortChanged   = "port-changing"   // a NAT that gave our peer port another: if it does so per destination (symmetric), its mappings are probed for (probe.go)
	NATUnknown       = "unknown"         // nothing observed (the server did not say)
	maxExtraEndpoint = 4                 // global IPv6 endpoints a client announces
)

// NATKind compares the endpoint the server observed of our connection
// from the peer port with our own addresses and the peer port.
func (p *Peer) NATKind(observed string) string {
	ap, err := netip.ParseAddrPort(observed)
	if err != nil {
		return NATUnknown
	}
	if isLocalAddr(ap.Addr().Unmap()) {
		return NATNone
	}
	if int(ap.Port()) == p.port {
		return NATPortKept
	}
	return NATPortChanged
}

func isLocalAddr(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if own, ok := netip.AddrFromSlice(n.IP); ok && own.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// Endpoints6 lists this host's global IPv6 addresses with the peer port:
// endpoints where peers can reach the listener without NAT (a firewall
// in front of it lets in what answers our own SYN). Private (ULA),
// link-local and loopback addresses are left out; at most four.
func (p *Peer) Endpoints6() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Is4() || ip.Is4In6() || !isGlobal6(ip) {
			continue
		}
		out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(p.port)))
		if len(out) == maxExtraEndpoint {
			break
		}
	}
	return out
}

// isGlobal6 says whether ip is a global unicast IPv6 address: not
// link-local, loopback, private (fc00::/7) or v4-mapped.
func isGlobal6(ip netip.Addr) bool {
	return ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() && !ip.IsPrivate()
}

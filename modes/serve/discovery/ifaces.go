package discovery

import (
	"net"
	"net/netip"
	"slices"
)

// Iface is a network interface as discovery sees it.
type Iface struct {
	Index    int
	Name     string
	Flags    net.Flags
	Prefixes []netip.Prefix // its addresses, each with its network
}

// SystemIfaces lists the host's interfaces that are up.
func SystemIfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Iface
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue // gone meanwhile
		}
		it := Iface{Index: ifi.Index, Name: ifi.Name, Flags: ifi.Flags}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			ip = ip.Unmap()
			if ip.Is4() && ones > 32 {
				ones -= 96
			}
			it.Prefixes = append(it.Prefixes, netip.PrefixFrom(ip, ones))
		}
		out = append(out, it)
	}
	return out, nil
}

// view is a snapshot of the interfaces: which ones to answer on and
// their networks. It is replaced whole, never changed.
type view struct {
	byIndex map[int]Iface
	answer  map[int]bool // the interfaces to answer on; nil: all of them
}

// newView is the view of ifs for a server listening on listen: every
// interface for a wildcard address, the loopback interfaces for a
// loopback address, else the interfaces that hold the address.
func newView(ifs []Iface, listen netip.Addr) *view {
	v := &view{byIndex: make(map[int]Iface, len(ifs))}
	if !listen.IsUnspecified() {
		v.answer = make(map[int]bool)
	}
	for _, ifi := range ifs {
		v.byIndex[ifi.Index] = ifi
		if v.answer == nil {
			continue
		}
		if listen.IsLoopback() && ifi.Flags&net.FlagLoopback != 0 ||
			slices.ContainsFunc(ifi.Prefixes, func(p netip.Prefix) bool { return p.Addr() == listen }) {
			v.answer[ifi.Index] = true
		}
	}
	return v
}

// knows reports whether the interface was up when the view was made.
func (v *view) knows(index int) bool {
	_, ok := v.byIndex[index]
	return ok
}

// allows reports whether a request from src that came in on interface
// index may be answered: the server listens there, and src is on that
// interface's own network (a loopback address on a loopback interface,
// an IPv6 link-local address, or an address inside one of its prefixes).
func (v *view) allows(index int, src netip.Addr) bool {
	ifi, ok := v.byIndex[index]
	if !ok || v.answer != nil && !v.answer[index] {
		return false
	}
	src = src.Unmap().WithZone("")
	switch {
	case src.IsLoopback():
		return ifi.Flags&net.FlagLoopback != 0
	case src.Is6() && src.IsLinkLocalUnicast():
		return true // the kernel takes fe80::/10 only from the link it came in on
	}
	for _, p := range ifi.Prefixes {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// names lists the interfaces answered on, for the log.
func (v *view) names() []string {
	var out []string
	for _, ifi := range v.byIndex {
		if v.answer == nil || v.answer[ifi.Index] {
			out = append(out, ifi.Name)
		}
	}
	slices.Sort(out)
	return out
}

// multicast lists the interfaces to join the IPv6 group on.
func (v *view) multicast() []Iface {
	var out []Iface
	for _, ifi := range v.byIndex {
		if ifi.Flags&net.FlagMulticast != 0 && (v.answer == nil || v.answer[ifi.Index]) {
			out = append(out, ifi)
		}
	}
	return out
}

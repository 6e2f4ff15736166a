package xfer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// Hole punching (PROTOCOL.md, "Making the link"). Both peers dial each
// other from their peer ports, each through its own NAT, towards the
// endpoint the server saw of the other. A NAT lets a packet in only when
// it answers one that went out; a SYN that comes first is dropped or,
// by a plain Linux router (and most that "reject"), answered with RST,
// which also deletes the mapping the SYN made on its own way out. So
// unless something is done the SYNs never cross: each is reset in turn.
//
// Attempts come in slots of punchSlot that both sides count from the
// moment their ticket arrived (the server sends the two tickets so that
// they arrive at once). The slots take turns:
//
//   - primed (even slots): the offerer dials with a first SYN whose TTL
//     is primeTTL: it makes the offerer's mapping and dies a router or
//     two later, before the far NAT could reset it, while the offerer's
//     connect stays pending. The other side dials answerDelay later;
//     its SYN finds the offerer's NAT open and meets the pending connect
//     (a simultaneous open), however late it comes. This only needs the
//     offerer to start before the other side's SYN arrives, and that the
//     far NAT is more than primeTTL-1 routers beyond the offerer's.
//   - simultaneous (odd slots): both dial plain SYNs at the slot's start.
//     They cross in flight when the starts are closer than the one-way
//     delay between the NATs: this covers a TTL that does not fit (a NAT
//     two hops in, or NATs next to each other), as libp2p's DCUtR does.
//
// A NAT that maps every destination to another port (symmetric,
// --random-fully) defeats both: on one side only, probing finds its
// mapping (probe.go); on both, the relay carries those links.
//
// Between peers on one LAN (or one host) nothing stands in the way: both
// dial plain SYNs, in shorter slots (lanSlot).
const (
	primeTTL    = 2
	answerDelay = 150 * time.Millisecond
	punchSlot   = 2 * time.Second // a pending connect sees one SYN retransmission (1 s)
	lanSlot     = 500 * time.Millisecond
)

// dialLoop dials the peer's endpoint addr from our peer port until a
// link is up or ctx ends, in slots counted from start. Refused,
// unreachable, timed out and "address in use" (the 4-tuple is taken by a
// connection the peer dialed to us) are tried again in the next slot.
func (p *Peer) dialLoop(ctx context.Context, t Ticket, opts ConnectOptions, addr string, start time.Time, offer func(*Link), note func(error)) {
	raddr, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		note(err)
		return
	}
	across := acrossInternet(raddr)
	slotLen := slotFor(across)
	for slot := 0; ctx.Err() == nil; slot++ {
		if late := time.Since(start.Add(time.Duration(slot) * slotLen)); late > slotLen {
			slot += int(late / slotLen) // an attempt took long: on to the slot under way
		}
		begin := start.Add(time.Duration(slot) * slotLen)
		primed := across && slot%2 == 0
		at, how := begin, HowDialed
		switch {
		case primed:
			how = HowPrimed
			if !t.Offerer {
				at = at.Add(answerDelay)
			}
		case across:
			how = HowSimultaneous
		}
		if !sleepUntil(ctx, at) {
			return
		}
		actx, cancel := context.WithDeadline(ctx, begin.Add(slotLen))
		l, err := p.dialPeer(actx, ctx, t, opts, addr, primed && t.Offerer, how)
		cancel()
		if err == nil {
			offer(l)
			return
		}
		note(err)
		if errors.Is(err, ErrLinkProtocol) || errors.Is(err, ErrPeerKey) {
			return // not a qchat peer, or not the one: retrying will not help
		}
		// Refused (ERR) is tried again too: the peer may not have been
		// told the ticket yet when our first HELLO came.
	}
}

// slotFor is the length of the attempts' slots towards an endpoint.
func slotFor(across bool) time.Duration {
	if across {
		return punchSlot
	}
	return lanSlot
}

// acrossInternet says whether addr is reached across the internet, where
// NATs and firewalls stand between peers. On a LAN or loopback there is
// no NAT, and a first SYN with a small TTL would reach the peer anyway.
func acrossInternet(addr *net.TCPAddr) bool {
	if addr == nil {
		return false
	}
	ip, ok := netip.AddrFromSlice(addr.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// sleepUntil waits until t or until ctx ends; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	return sleepCtx(ctx, d)
}

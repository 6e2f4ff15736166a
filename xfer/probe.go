package xfer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Probing: one side's NAT gives every destination a new port (symmetric,
// `MASQUERADE --random-fully`), the other side's keeps its ports (punch.go
// covers every NAT that maps by endpoint). The port-changing side cannot
// be dialed at the endpoint the server saw: its NAT made that port for
// the server only. So the two sides look for each other the way
// Tailscale does with a "hard" NAT on one side (a birthday search):
//
//   - the port-changing side (sprayer) dials the other side's endpoint
//     from probeSockets sockets at once, each from a port of its own, so
//     that its NAT makes probeSockets mappings towards that endpoint; the
//     first SYN of each has the small TTL of a primed dial (it must not
//     reach a far NAT that answers with RST, which would close the
//     mapping again) and the connects stay pending. The SYNs sent again
//     at 1 s have the full TTL: behind such a NAT the mappings live about
//     a second, so the sprayer makes probeSockets more in the middle of
//     the slot, and the two sides' schedules may be a second apart (a
//     loaded host) and still meet;
//   - the other side (prober) dials probePorts random ports of the
//     sprayer's address from its own peer port, probeDelay later, spread
//     over probeSpread (late enough for a sprayer that started late or is
//     slow to open its sockets, early enough to come before its SYNs are
//     sent again, at 1 s, with the full TTL: a far NAT that answers those
//     with RST closes the mapping). A probe reset at once by the sprayer's
//     NAT (no mapping on that port, or none yet: the sprayer's schedule may
//     run late on a loaded host) is tried again probeAgain later. A probe that hits one of the mappings goes through
//     the sprayer's NAT to a pending connect: a simultaneous open. Each
//     probe also opens the prober's own NAT for that port, so a sprayer's
//     retransmitted SYN to a hit port gets in as well.
//
// With 512 of each among the 64,512 ports a NAT picks from, a round finds
// a mapping with probability 1 - e^(-512·512/64512), 98 %. A round goes in
// every slot (beside the attempts of punch.go, from other ports), each
// with new ports, while the relay carries the link (which moves when a
// probe hits): two rounds miss once in 3,000. A side behind the
// same kind of NAT as its peer neither sprays nor probes: with both
// ports changing there is nothing to aim at, and with both kept the
// plain attempts work.
const (
	probeSockets = 512
	probePorts   = 512
	probeDelay   = 200 * time.Millisecond
	probeSpread  = 500 * time.Millisecond
	probeAgain   = 700 * time.Millisecond // a port reset at once is tried again this much later
	probeFirst   = 0                      // the first slot of probing; then every one
	probeMinPort = 1024
)

// probeRole tells whether this side sprays (its NAT changes ports, the
// peer's keeps them) or probes (the other way round), or neither. A peer
// that did not say its own port (t.PeerPort) gets neither.
func probeRole(t Ticket, myNAT string) (spray, probe bool) {
	ap, err := netip.ParseAddrPort(t.PeerAddr)
	if err != nil || t.PeerPort == 0 || !ap.Addr().Unmap().Is4() {
		return false, false
	}
	peerChanged := int(ap.Port()) != t.PeerPort
	return myNAT == NATPortChanged && !peerChanged, myNAT == NATPortKept && peerChanged
}

// probeLoop runs the rounds of spraying (spray) or probing until a link
// is up or ctx ends, in slots counted from start.
func (p *Peer) probeLoop(ctx context.Context, t Ticket, opts ConnectOptions, spray bool, start time.Time, offer func(*Link), note func(error)) {
	raddr, err := net.ResolveTCPAddr("tcp", t.PeerAddr)
	if err != nil {
		return
	}
	for slot := probeFirst; ctx.Err() == nil; slot++ {
		begin := start.Add(time.Duration(slot) * punchSlot)
		if time.Since(begin) > punchSlot/2 {
			continue // too late for this one's schedule
		}
		dctx, cancel := context.WithDeadline(ctx, begin.Add(punchSlot))
		var l *Link
		if spray {
			l, err = p.race(dctx, ctx, t, opts, 2*probeSockets, begin, 0, func(ctx context.Context, i int) (net.Conn, string, error) {
				if i >= probeSockets && !sleepCtx(ctx, punchSlot/2) {
					return nil, "", ctx.Err() // the second half: mid-slot
				}
				c, err := dialTTL(ctx, 0, raddr, primeTTL)
				return c, "dialed " + t.PeerAddr, err
			})
		} else {
			ports := probeTargets(probePorts, int(raddr.Port))
			host := raddr.IP.String()
			l, err = p.race(dctx, ctx, t, opts, len(ports), begin.Add(probeDelay), probeSpread, func(ctx context.Context, i int) (net.Conn, string, error) {
				addr := net.JoinHostPort(host, strconv.Itoa(ports[i]))
				c, err := p.Dialer(0).DialContext(ctx, "tcp", addr)
				if errors.Is(err, syscall.ECONNREFUSED) && sleepCtx(ctx, probeAgain) {
					// Reset by the sprayer's NAT: no mapping there yet,
					// maybe only yet (a sprayer that started late).
					c, err = p.Dialer(0).DialContext(ctx, "tcp", addr)
				}
				return c, "dialed " + addr, err
			})
		}
		cancel()
		if l != nil {
			offer(l)
			return
		}
		note(err)
	}
}

// probeTargets picks n distinct random ports a NAT may map to, leaving
// out skip (the port the server saw: the plain attempts dial it).
func probeTargets(n, skip int) []int {
	span := 65536 - probeMinPort
	n = min(n, span-1)
	seen := make(map[int]bool, n)
	out := make([]int, 0, n)
	for len(out) < n {
		port := probeMinPort + rand.IntN(span)
		if port == skip || seen[port] {
			continue
		}
		seen[port] = true
		out = append(out, port)
	}
	return out
}

// race makes n connections at once with dial (the i-th at at plus
// spread·i/n, within dialCtx), makes a link of each that connects (HELLO
// and TLS, within ctx), and returns the first link that is up; the other
// attempts are stopped and their links closed.
func (p *Peer) race(dialCtx, ctx context.Context, t Ticket, opts ConnectOptions, n int, at time.Time, spread time.Duration,
	dial func(ctx context.Context, i int) (net.Conn, string, error)) (*Link, error) {
	dctx, stop := context.WithCancel(dialCtx)
	defer stop()
	type result struct {
		l   *Link
		err error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	started := 0
	for i := range n {
		if i%16 == 0 && !sleepUntil(dctx, at.Add(spread*time.Duration(i)/time.Duration(n))) {
			break
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, via, err := dial(dctx, i)
			if err != nil {
				results <- result{err: err}
				return
			}
			l, err := p.linkUp(ctx, conn, t, opts, via, HowProbed)
			results <- result{l, err}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	var last error
	for range started {
		r := <-results
		switch {
		case r.l != nil:
			stop()
			go func() { // links that came up too: not needed
				for r := range results {
					if r.l != nil {
						r.l.Close()
					}
				}
			}()
			return r.l, nil
		case !errors.Is(r.err, context.Canceled) && !errors.Is(r.err, context.DeadlineExceeded):
			last = r.err
		}
	}
	err := fmt.Errorf("probing for the port-changing NAT's mapping (%d tries): none found", started)
	if last != nil {
		err = fmt.Errorf("%w (last: %w)", err, last)
	}
	return nil, err
}

package xfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// ConnectOptions tune Connect.
type ConnectOptions struct {
	Server string // the server's address, for the relay
	// Timeout bounds the making of the link, all paths together (default
	// 15s). A link that came up through the relay goes on trying the
	// direct paths as long, to move to one.
	Timeout    time.Duration
	ForceRelay bool          // skip the direct paths (for tests, or a known firewall)
	Idle       time.Duration // idle timeout of the link once up (default 30s)
	NAT        string        // this side's NAT kind (Peer.NATKind), for what the user is told
}

func (o *ConnectOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 30 * time.Second
	}
}

// v6Lead is how much earlier than IPv4 the peer's IPv6 endpoints are
// dialed when both sides have IPv6 (RFC 8305's connection attempt delay).
const v6Lead = 250 * time.Millisecond

// ErrNoPath is returned by Connect when no path reached the peer in time.
var ErrNoPath = errors.New("no path to the peer")

// ErrRelayRefused is wrapped by Connect's error when the server would not
// relay (it does not relay, or the ticket is not one it may relay).
var ErrRelayRefused = errors.New("relay refused")

// ErrNoRelay is wrapped by Connect's error when the server does not relay
// at all (serve --no-relay, 502): with no direct path either, trying
// again will not help.
var ErrNoRelay = errors.New("the server does not relay")

// errStopped ends the attempts once a direct link is in use, or the link
// ended.
var errStopped = errors.New("attempts over")

// Connect establishes the link for a granted ticket. Every path runs at
// once: this side dials the peer's endpoints from its own peer port (its
// IPv6 ones first), punching through NATs (punch.go), the listener takes
// what the peer dials, and the server is asked to relay (at once when
// the peer is across the internet, after lanSlot on a LAN, where a
// direct link comes at once). Each link is authenticated by HELLO and TLS
// both ways. The offerer takes the first link that is up and says USE on
// it; the other side takes the link on which USE arrives.
//
// A link through the relay can move: the direct attempts go on (within
// opts.Timeout from the start), and when one succeeds the link moves to
// it while in use (upgrade.go); Link.Moves tells. With the relay refused
// (serve --no-relay) and no direct link after every kind of attempt (two
// slots), Connect fails at once, saying both.
func (p *Peer) Connect(ctx context.Context, t Ticket, opts ConnectOptions) (*Link, error) {
	opts.defaults()
	if !protocol.ValidLinkKey(t.PeerKey) {
		p.Forget(t.ID)
		return nil, fmt.Errorf("%w: the server passed no link key for %d (links are end-to-end encrypted: both sides need a qchat client that sends LINKKEY)", ErrPeerKey, t.Peer)
	}
	p.Expect(t)
	p.mu.Lock()
	e := p.expect[t.ID]
	p.mu.Unlock()
	if e == nil {
		return nil, errors.New("peer listener closed")
	}

	start := time.Now()
	deadline := start.Add(opts.Timeout)
	if !t.Expires.IsZero() && t.Expires.Add(opts.Timeout).Before(deadline) {
		deadline = t.Expires.Add(opts.Timeout)
	}
	// The attempts outlive Connect while a relayed link may still move;
	// until a link is handed out, the caller's ctx ends them too.
	base, endBase := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	run, stop := context.WithCancelCause(base)
	c := &connecting{p: p, t: t, opts: opts, e: e, start: start, run: run,
		stop:   func(err error) { stop(err); endBase() },
		found:  make(chan *Link, 8),
		result: make(chan connResult, 1)}
	unbind := context.AfterFunc(ctx, func() { c.stop(ctx.Err()) })
	defer unbind()

	var wg sync.WaitGroup
	addrs := t.endpoints()
	if opts.ForceRelay {
		addrs = nil
	}
	// IPv6 goes first only when both sides have it: each side must count
	// the slots of an endpoint from the same moment as the other.
	v6 := len(t.PeerAddrs) > 0 && len(p.Endpoints6()) > 0
	for _, a := range addrs {
		ra, _ := net.ResolveTCPAddr("tcp", a)
		lead := time.Duration(0)
		if v6 && ra != nil && ra.IP.To4() != nil {
			lead = v6Lead
		}
		c.across = c.across || acrossInternet(ra)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.dialLoop(run, t, opts, a, start.Add(lead), c.offer, c.note)
		}()
	}
	c.direct = len(addrs) > 0
	// One side's NAT changes ports, the other's keeps them: they also
	// look for each other's mappings (probe.go). Not when both have
	// IPv6, which needs no NAT.
	if spray, probe := probeRole(t, opts.NAT); (spray || probe) && c.direct && !v6 {
		ra, _ := net.ResolveTCPAddr("tcp", t.PeerAddr)
		if acrossInternet(ra) {
			c.probing = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.probeLoop(run, t, opts, spray, start, c.offer, c.note)
			}()
		}
	}
	wg.Add(1)
	go func() { // links the peer dialed to us
		defer wg.Done()
		for {
			select {
			case l := <-e.links:
				c.offer(l)
			case err := <-e.errs:
				c.note(err)
			case <-run.Done():
				return
			}
		}
	}()
	if opts.Server != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.direct && !c.across && !sleepCtx(run, lanSlot) {
				return
			}
			l, err := p.relay(run, t, opts)
			if err != nil {
				c.note(err)
				if errors.Is(err, ErrRelayRefused) {
					c.relayRefused(err)
				}
				return
			}
			c.offer(l)
		}()
	}
	go func() {
		wg.Wait()
		close(c.found)
	}()
	if t.Offerer {
		go c.offerer()
	} else {
		go c.acceptor()
	}
	r := <-c.result
	return r.l, r.err
}

// endpoints lists the peer's endpoints to dial: the announced (IPv6)
// ones, then the one the server saw.
func (t Ticket) endpoints() []string {
	var out []string
	for _, a := range t.PeerAddrs {
		if a != t.PeerAddr {
			out = append(out, a)
		}
	}
	if t.PeerAddr != "" {
		out = append(out, t.PeerAddr)
	}
	return out
}

// connecting is one Connect under way, and the upgrade of its link after.
type connecting struct {
	p       *Peer
	t       Ticket
	opts    ConnectOptions
	e       *expected
	start   time.Time
	run     context.Context // every attempt; ended by stop
	stop    func(error)
	direct  bool // there are direct attempts
	across  bool // some of them across the internet
	probing bool // and probing for a port-changing NAT's mapping (probe.go)
	found   chan *Link
	result  chan connResult

	lastErr  atomic.Pointer[error]
	relayErr atomic.Pointer[error] // the server would not relay
	once     sync.Once
}

type connResult struct {
	l   *Link
	err error
}

// offer hands a link that is up to the chooser.
func (c *connecting) offer(l *Link) {
	select {
	case c.found <- l:
	case <-c.run.Done():
		l.Close()
	}
}

// note keeps why an attempt failed, for the error when all did.
func (c *connecting) note(err error) {
	if err == nil || c.run.Err() != nil {
		return
	}
	// A peer that failed the key check is what the user must hear of,
	// not the paths that merely did not answer.
	if old := c.lastErr.Load(); old != nil && errors.Is(*old, ErrPeerKey) && !errors.Is(err, ErrPeerKey) {
		return
	}
	c.lastErr.Store(&err)
}

// errNoRelayNoDirect ends the attempts when the server will not relay
// and every kind of direct attempt failed.
type errNoRelayNoDirect struct{ relay error }

func (e errNoRelayNoDirect) Error() string { return e.relay.Error() }

// relayRefused: the server will not relay. Without direct paths the
// attempt is over; with them, it is once both kinds of attempt (primed
// and simultaneous) have had their slot, and the first round of probing
// when there is one (its slot, and one more for the hello of a link it
// found).
func (c *connecting) relayRefused(err error) {
	c.relayErr.Store(&err)
	if !c.direct {
		c.stop(errNoRelayNoDirect{err})
		return
	}
	wait := 2 * slotFor(c.across)
	if c.probing {
		wait = max(wait, time.Duration(probeFirst+2)*punchSlot)
	}
	time.AfterFunc(time.Until(c.start.Add(wait)), func() { c.stop(errNoRelayNoDirect{err}) })
}

// relayError is the server's refusal to relay: its reply.
type relayError struct{ reply string }

func (e *relayError) Error() string { return "relay refused: " + e.reply }

func (e *relayError) Is(target error) bool {
	return target == ErrRelayRefused || target == ErrNoRelay && strings.HasPrefix(e.reply, "502")
}

// noPathError: no direct path, and the server does not relay.
type noPathError struct {
	after   time.Duration
	details string
	relay   error // wraps ErrRelayRefused
}

func (e *noPathError) Error() string {
	s := fmt.Sprintf("no direct path to the peer was found in %s", e.after.Round(100*time.Millisecond))
	if e.details != "" {
		s += " (" + e.details + ")"
	}
	why := e.relay.Error()
	var re *relayError
	if errors.As(e.relay, &re) {
		why = re.reply
	}
	return s + ", and the server will not relay: " + why
}

func (e *noPathError) Unwrap() []error { return []error{ErrNoPath, e.relay} }

// deliver hands Connect its outcome, once.
func (c *connecting) deliver(l *Link, err error) {
	c.once.Do(func() { c.result <- connResult{l, err} })
}

// failure says why no link came up.
func (c *connecting) failure() error {
	cause := context.Cause(c.run)
	var last error
	if le := c.lastErr.Load(); le != nil {
		last = *le
	}
	var nr errNoRelayNoDirect
	switch {
	case errors.As(cause, &nr):
		if !c.direct {
			return fmt.Errorf("%w: %w", ErrNoPath, nr.relay)
		}
		var details []string
		if c.opts.NAT != "" {
			details = append(details, "NAT here: "+c.opts.NAT)
		}
		if last != nil && !errors.Is(last, ErrRelayRefused) {
			details = append(details, "last try: "+last.Error())
		}
		return &noPathError{time.Since(c.start), strings.Join(details, "; "), nr.relay}
	case cause != nil && !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, errStopped):
		return cause // the caller gave up
	case last != nil:
		return fmt.Errorf("%w: %w", ErrNoPath, last)
	}
	return fmt.Errorf("%w within the connect timeout", ErrNoPath)
}

// taken makes l the link: it gets the link's idle timeout, and a relayed
// link with direct attempts still going becomes movable. A direct link
// ends the attempts.
func (c *connecting) taken(l *Link) {
	l.SetIdle(c.opts.Idle)
	if l.Path == "direct" || !c.direct {
		c.used() // from now on a HELLO with this ticket is refused
		c.stop(errStopped)
		return
	}
	l.makeMovable()
	l.mv.onClose = func() { c.stop(errStopped) }
}

// used makes the listener refuse the ticket: the link is chosen and
// cannot move any more.
func (c *connecting) used() {
	c.p.mu.Lock()
	c.e.used = true
	c.p.mu.Unlock()
}

// finish ends the work of the ticket: no more moves, the ticket
// forgotten (later HELLOs for it are refused).
func (c *connecting) finish(cur *Link) {
	if cur == nil {
		c.deliver(nil, c.failure())
	} else {
		cur.noMoreMoves()
	}
	c.stop(errStopped)
	c.used()
	c.p.Forget(c.t.ID)
	// Links the listener finished for this ticket after the attempts
	// ended are nobody's.
	for {
		select {
		case l := <-c.e.links:
			l.Close()
		default:
			return
		}
	}
}

// offerer takes the first link that is up (USE), and moves a relayed
// one to the first direct link that comes up after it (MOVE).
func (c *connecting) offerer() {
	var cur *Link
	moved := false
	for l := range c.found {
		switch {
		case cur == nil:
			if err := l.send("USE"); err != nil {
				l.Close()
				continue
			}
			cur = l
			c.taken(l)
			c.deliver(l, nil)
		case cur.mv != nil && !moved && l.Path == "direct":
			if err := cur.moveTo(l); err != nil {
				l.Close()
				c.note(fmt.Errorf("moving the link: %w", err))
				continue
			}
			moved = true
			c.stop(errStopped)
		default:
			l.Close()
		}
	}
	c.finish(cur)
}

// acceptor takes the link on which USE arrives, and moves it to a
// direct link on which MOVE arrives. A MOVE may overtake the USE (the
// direct path is faster than the relay): it waits for it.
func (c *connecting) acceptor() {
	type first struct {
		l    *Link
		verb string
	}
	lines := make(chan first)
	var cur, movedTo *Link
	var early, all []*Link
	pending := 0
	found, done := c.found, c.run.Done()
	for found != nil || pending > 0 {
		select {
		case l, ok := <-found:
			if !ok {
				found = nil
				continue
			}
			all = append(all, l)
			pending++
			go func() {
				verb, _, err := l.expect("USE", "MOVE")
				if err != nil {
					l.Close()
					verb = ""
				}
				lines <- first{l, verb}
			}()
		case f := <-lines:
			pending--
			switch {
			case f.verb == "USE" && cur == nil:
				cur = f.l
				c.taken(cur)
				c.deliver(cur, nil)
				for _, m := range early {
					movedTo = c.acceptMove(cur, m, movedTo)
				}
				early = nil
			case f.verb == "MOVE" && cur == nil:
				early = append(early, f.l)
			case f.verb == "MOVE":
				movedTo = c.acceptMove(cur, f.l, movedTo)
			case f.verb != "":
				f.l.Close()
			}
		case <-done:
			// No more links: the offerer's choice (if any) is made, and
			// no move can come any more. Links still waiting for their
			// first line are closed, which ends their wait.
			done = nil
			if cur == nil {
				c.deliver(nil, c.failure())
			}
			for _, l := range all {
				if l != cur && l != movedTo {
					l.Close()
				}
			}
		}
	}
	for _, l := range early {
		l.Close()
	}
	c.finish(cur)
}

// acceptMove moves cur to d on the offerer's MOVE, unless it moved (to
// movedTo) already or cannot; it returns where cur moved to, if anywhere.
func (c *connecting) acceptMove(cur, d, movedTo *Link) *Link {
	if movedTo != nil || cur.mv == nil || d.Path != "direct" {
		d.Close()
		return movedTo
	}
	if err := cur.acceptMove(d); err != nil {
		d.Close()
		c.note(fmt.Errorf("moving the link: %w", err))
		return nil
	}
	c.stop(errStopped)
	return d
}

package xfer

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	reuseport "github.com/libp2p/go-reuseport"
)

// Peer is this client's peer endpoint: a listener with SO_REUSEPORT on a
// port that the client also dials the server from, so that the server
// observes the endpoint (address and port, NAT-mapped if there is a NAT)
// instead of being told it. Connections to the listener are served only
// for tickets that the server handed this client (Expect): a connection
// whose first line is not a valid HELLO for one of them is answered ERR
// and closed, before anyone is asked anything.
//
// Safe for concurrent use.
type Peer struct {
	ln        net.Listener
	port      int
	me        atomic.Int64
	helloWait time.Duration // time a connection has to say HELLO
	mu        sync.Mutex
	expect    map[string]*expected
	closed    bool
	Refused   atomic.Int64 // connections refused for a bad ticket (for tests and logs)
	wg        sync.WaitGroup
}

// Ticket is what the server said about one granted link.
type Ticket struct {
	ID       string    // single-use, unguessable
	Purpose  string    // "chat" or "file"
	Peer     int64     // the other user
	PeerAddr string    // the other side's peer endpoint as the server saw it; "" if none
	Expires  time.Time // no link may start after this
	Offerer  bool      // I asked (CHAT or FILE); the offerer chooses the link
}

type expected struct {
	t     Ticket
	links chan *Link // authenticated incoming links
	used  bool
}

// Listen opens the peer listener on addr ("" means all interfaces, a free
// port: ":0"). Binding all interfaces matters: a socket bound to
// 127.0.0.1 cannot reach other hosts.
func Listen(addr string) (*Peer, error) {
	if addr == "" {
		addr = ":0"
	}
	ln, err := reuseport.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer listener: %w", err)
	}
	p := &Peer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, helloWait: 10 * time.Second, expect: make(map[string]*expected)}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// LocalAddr is an address this host can dial the listener at: the
// listening address, with loopback for the all-interfaces address.
func (p *Peer) LocalAddr() string {
	a := p.ln.Addr().(*net.TCPAddr)
	if a.IP == nil || a.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return a.String()
}

// Port is the listening port.
func (p *Peer) Port() int { return p.port }

// SetMe sets my user id, which HELLO carries; before it is set the peer
// refuses every connection.
func (p *Peer) SetMe(id int64) { p.me.Store(id) }

// Close stops the listener and forgets every ticket.
func (p *Peer) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// Dialer returns a dialer whose connections come from the peer port, for
// the connection to the server (the server observes the endpoint from it).
func (p *Peer) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: reuseport.Control, LocalAddr: &net.TCPAddr{Port: p.port}}
}

// Expect makes the listener accept links for t until it expires or a link
// is chosen. Expecting the same ticket again updates what is known of it
// (the answer to an offer expects it before the server confirms it, so
// that an offerer quick to dial is not turned away).
func (p *Peer) Expect(t Ticket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.expect[t.ID]; e != nil {
		e.t = t
		return
	}
	p.expect[t.ID] = &expected{t: t, links: make(chan *Link, 4)}
}

// Forget drops a ticket: later links for it are refused.
func (p *Peer) Forget(ticket string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.expect, ticket)
}

func (p *Peer) acceptLoop() {
	defer p.wg.Done()
	var delay time.Duration
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay) // out of descriptors: back off, keep listening
			continue
		}
		delay = 0
		go p.serveIncoming(conn)
	}
}

// serveIncoming authenticates one incoming connection: HELLO with a ticket
// we expect, from the user the ticket names, within the hello timeout.
func (p *Peer) serveIncoming(conn net.Conn) {
	l := newLink(conn, p.helloWait)
	verb, rest, err := l.readLine()
	if err != nil {
		p.Refused.Add(1)
		conn.Close()
		return
	}
	refuse := func(why string) {
		p.Refused.Add(1)
		l.send("ERR", why)
		conn.Close()
	}
	if verb != "HELLO" {
		refuse("say HELLO <ticket> <id> first")
		return
	}
	args, err := fields(rest, 2, false)
	if err != nil {
		refuse("usage: HELLO <ticket> <id>")
		return
	}
	e, t := p.lookup(args[0])
	from, idErr := strconv.ParseInt(args[1], 10, 64)
	switch {
	case e == nil:
		refuse("unknown, used or expired ticket")
		return
	case idErr != nil || from != t.Peer:
		refuse("ticket not issued to you")
		return
	}
	me := p.me.Load()
	if err := l.send("HELLO", t.ID, strconv.FormatInt(me, 10)); err != nil {
		conn.Close()
		return
	}
	l.Path, l.Via, l.Peer, l.Ticket, l.Offerer = "direct", "accepted from "+conn.RemoteAddr().String(), t.Peer, t.ID, t.Offerer
	select {
	case e.links <- l:
	default:
		conn.Close() // more links than anyone could want
	}
}

// lookup returns the live expectation of a ticket and what is known of
// the ticket then, comparing in constant time, or nil.
func (p *Peer) lookup(ticket string) (*expected, Ticket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.expect {
		if subtle.ConstantTimeCompare([]byte(id), []byte(ticket)) == 1 {
			if e.used || time.Now().After(e.t.Expires) {
				return nil, Ticket{}
			}
			return e, e.t
		}
	}
	return nil, Ticket{}
}

// ConnectOptions tune Connect.
type ConnectOptions struct {
	Server     string        // the server's address, for the relay
	Timeout    time.Duration // to have a link, all paths together (default 15s)
	Direct     time.Duration // direct attempts alone before the relay is tried too (default 3s)
	ForceRelay bool          // skip the direct paths (for tests, or a known firewall)
	Idle       time.Duration // idle timeout of the link once up (default 30s)
}

func (o *ConnectOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Direct <= 0 {
		o.Direct = 3 * time.Second
	}
	o.Direct = min(o.Direct, o.Timeout/2)
	if o.Idle <= 0 {
		o.Idle = 30 * time.Second
	}
}

// ErrNoPath is returned by Connect when no path reached the peer in time.
var ErrNoPath = errors.New("no path to the peer")

// ErrRelayRefused is wrapped by Connect's error when the server would not
// relay (it does not relay, or the ticket is not one it may relay): with
// no direct path either, trying again will not help.
var ErrRelayRefused = errors.New("relay refused")

// Connect establishes the link for a granted ticket. Every path runs at
// once, as soon as it may: this side dials the peer's endpoint from its
// own peer port (the offerer at once, the other side a moment later, so
// that the usual path is "offerer dials"; when both dial, TCP
// simultaneous open makes one connection of the two), the listener takes
// what the peer dials, and after opts.Direct both sides also ask the
// server to relay. Each link is authenticated by HELLO both ways. The
// offerer takes the first link that is up and says USE on it; the other
// side takes the link on which USE arrives. The ticket is used up then.
func (p *Peer) Connect(ctx context.Context, t Ticket, opts ConnectOptions) (*Link, error) {
	opts.defaults()
	p.Expect(t)
	p.mu.Lock()
	e := p.expect[t.ID]
	p.mu.Unlock()
	if e == nil {
		return nil, errors.New("peer listener closed")
	}
	defer p.Forget(t.ID)

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if !t.Expires.IsZero() {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, t.Expires.Add(opts.Timeout))
		defer c2()
	}

	found := make(chan *Link, 8)
	var lastErr atomic.Pointer[error]
	note := func(err error) {
		if err != nil && ctx.Err() == nil {
			lastErr.Store(&err)
		}
	}
	var wg sync.WaitGroup
	offer := func(l *Link) {
		select {
		case found <- l:
		case <-ctx.Done():
			l.Close()
		}
	}
	if !opts.ForceRelay && t.PeerAddr != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.dialLoop(ctx, t, opts, offer, note)
		}()
	}
	wg.Add(1)
	go func() { // links the peer dialed to us
		defer wg.Done()
		for {
			select {
			case l := <-e.links:
				l.SetIdle(opts.Idle)
				offer(l)
			case <-ctx.Done():
				return
			}
		}
	}()
	if opts.Server != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !opts.ForceRelay && t.PeerAddr != "" && !sleepCtx(ctx, opts.Direct) {
				return
			}
			l, err := p.relay(ctx, t, opts)
			note(err)
			if l != nil {
				offer(l)
			} else if errors.Is(err, ErrRelayRefused) && (opts.ForceRelay || t.PeerAddr == "") {
				cancel() // the only path said no: fail now, not at the timeout
			}
		}()
	}
	go func() {
		wg.Wait()
		close(found)
	}()

	chosen, err := p.choose(ctx, t, found)
	cancel()
	// Whatever else came up is closed; the goroutines end with ctx.
	go func() {
		for l := range found {
			if l != chosen {
				l.Close()
			}
		}
	}()
	if err != nil {
		if le := lastErr.Load(); le != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoPath, *le)
		}
		return nil, err
	}
	p.mu.Lock()
	e.used = true
	p.mu.Unlock()
	chosen.SetIdle(opts.Idle)
	return chosen, nil
}

// choose picks the link: the offerer the first one, announced with USE;
// the other side the one on which USE arrives.
func (p *Peer) choose(ctx context.Context, t Ticket, found <-chan *Link) (*Link, error) {
	if t.Offerer {
		for {
			select {
			case l, ok := <-found:
				if !ok {
					return nil, ErrNoPath
				}
				if err := l.send("USE"); err != nil {
					l.Close()
					continue
				}
				return l, nil
			case <-ctx.Done():
				return nil, fmt.Errorf("%w within the connect timeout", ErrNoPath)
			}
		}
	}
	used := make(chan *Link, 1)
	var waiting sync.WaitGroup
	var seen []*Link
	var chosen *Link
	defer func() {
		for _, l := range seen {
			if l != chosen {
				l.Close() // the offerer took another: end its wait for USE
			}
		}
		go func() { waiting.Wait(); close(used) }()
	}()
	for {
		select {
		case l, ok := <-found:
			if !ok {
				found = nil
				continue
			}
			seen = append(seen, l)
			waiting.Add(1)
			go func() {
				defer waiting.Done()
				if _, _, err := l.expect("USE"); err != nil {
					l.Close()
					return
				}
				select {
				case used <- l:
				default:
					l.Close()
				}
			}()
		case l := <-used:
			chosen = l
			return l, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%w within the connect timeout", ErrNoPath)
		}
	}
}

// dialLoop dials the peer from our peer port until a link is up or ctx
// ends. Refused, unreachable and "address in use" (the 4-tuple is taken
// by a connection the peer dialed to us) are retried.
func (p *Peer) dialLoop(ctx context.Context, t Ticket, opts ConnectOptions, offer func(*Link), note func(error)) {
	if !t.Offerer && !sleepCtx(ctx, 150*time.Millisecond) {
		return
	}
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		l, err := p.dialPeer(ctx, t, opts)
		if err == nil {
			offer(l)
			return
		}
		note(err)
		if errors.Is(err, ErrLinkProtocol) {
			return // not a qchat peer: retrying will not help
		}
		// Refused (ERR) is tried again: the peer may not have been told
		// the ticket yet when our first HELLO came.
		if !sleepCtx(ctx, delay) {
			return
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

var errPeerRefused = errors.New("refused by the peer")

// dialPeer makes one direct attempt: connect from our port, HELLO both ways.
func (p *Peer) dialPeer(ctx context.Context, t Ticket, opts ConnectOptions) (*Link, error) {
	d := p.Dialer(min(opts.Timeout, 5*time.Second))
	conn, err := d.DialContext(ctx, "tcp", t.PeerAddr)
	if err != nil {
		return nil, err
	}
	if isSelf(conn) {
		conn.Close()
		return nil, errors.New("dialed our own endpoint")
	}
	l, err := p.hello(newLink(conn, opts.Idle), t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	l.Path, l.Via = "direct", "dialed "+t.PeerAddr
	return l, nil
}

// isSelf reports a TCP self-connect (we dialed our own port).
func isSelf(c net.Conn) bool {
	return c.LocalAddr().String() == c.RemoteAddr().String()
}

// hello runs the handshake of the side that speaks first: send HELLO, read
// the peer's. In a simultaneous open (or through the relay) both sides
// speak first, which works the same.
func (p *Peer) hello(l *Link, t Ticket) (*Link, error) {
	idle := l.idle
	l.idle = min(idle, p.helloWait)
	defer l.SetIdle(idle)
	if err := l.send("HELLO", t.ID, strconv.FormatInt(p.me.Load(), 10)); err != nil {
		return nil, err
	}
	verb, rest, err := l.readLine()
	if err != nil {
		return nil, err
	}
	if verb == "ERR" {
		return nil, fmt.Errorf("%w: %s", errPeerRefused, clipText(rest))
	}
	if verb != "HELLO" {
		return nil, protoErr("expected HELLO, got %q", clipText(verb))
	}
	args, err := fields(rest, 2, false)
	if err != nil {
		return nil, err
	}
	from, err := strconv.ParseInt(args[1], 10, 64)
	if subtle.ConstantTimeCompare([]byte(args[0]), []byte(t.ID)) != 1 || err != nil || from != t.Peer {
		return nil, protoErr("the peer does not hold this ticket")
	}
	l.Peer, l.Ticket, l.Offerer = t.Peer, t.ID, t.Offerer
	return l, nil
}

// relay asks the server to relay this ticket's link: connect to the server
// port, read the greeting, RELAY <ticket>, wait for the other side
// (200), then HELLO both ways through it.
func (p *Peer) relay(ctx context.Context, t Ticket, opts ConnectOptions) (*Link, error) {
	d := net.Dialer{Timeout: min(opts.Timeout, 10*time.Second)}
	conn, err := d.DialContext(ctx, "tcp", opts.Server)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// The reader becomes the link's: the peer's HELLO may come in the
	// same segment as the server's 200.
	r := bufio.NewReaderSize(conn, 64<<10)
	readReply := func() (string, error) {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("relay: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	conn.SetDeadline(time.Now().Add(opts.Timeout))
	greeting, err := readReply()
	if err != nil || !strings.HasPrefix(greeting, "220") {
		conn.Close()
		return nil, fmt.Errorf("relay: no greeting from the server (%v)", err)
	}
	if _, err := conn.Write([]byte("RELAY " + t.ID + "\n")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	reply, err := readReply()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(reply, "200") {
		conn.Close()
		return nil, fmt.Errorf("%w: %s", ErrRelayRefused, clipText(reply))
	}
	conn.SetDeadline(time.Time{})
	l, err := p.hello(newLinkReader(conn, r, opts.Idle), t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	l.Path, l.Via = "relay", "relayed by the server"
	return l, nil
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

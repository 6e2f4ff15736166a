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
// and closed, before anyone is asked anything. The peer also holds this
// run's link key (Fingerprint), which every link proves (secure.go).
//
// Safe for concurrent use.
type Peer struct {
	ln        net.Listener
	port      int
	id        *identity
	me        atomic.Int64
	helloWait time.Duration // time a connection has to say HELLO
	mu        sync.Mutex
	expect    map[string]*expected
	closed    bool
	Refused   atomic.Int64 // connections refused for a bad ticket (for tests and logs)
	wg        sync.WaitGroup
	incoming  chan struct{} // a place per connection not yet through HELLO and TLS (maxIncoming)
}

// maxIncoming bounds the connections to the listener that have not proved
// a ticket yet. Anyone who reaches the port may connect and stay silent
// for the hello timeout; past this many, new ones are closed at once (the
// links of this side still come up by dialing out, or by the relay).
const maxIncoming = 64

// Ticket is what the server said about one granted link.
type Ticket struct {
	ID       string // single-use, unguessable
	Purpose  string // "chat" or "file"
	Peer     int64  // the other user
	PeerAddr string // the other side's peer endpoint as the server saw it; "" if none
	// PeerPort is the port of the other side's peer listener on its own
	// host, as it said it (0 if it did not): when the port of PeerAddr
	// is another, a NAT changed it.
	PeerPort int
	// PeerAddrs are more endpoints of the other side, as it announced
	// them (its global IPv6 addresses): dialed first.
	PeerAddrs []string
	Expires   time.Time // no link may start after this
	Offerer   bool      // I asked (CHAT or FILE); the offerer chooses the link
	// PeerKey is the fingerprint of the other side's link key, as the
	// server passed it: the link must prove it.
	PeerKey string
	// RelaySecret is this side's proof, to the server, that it holds the
	// ticket: RELAY needs it.
	RelaySecret string
}

type expected struct {
	t     Ticket
	links chan *Link    // authenticated incoming links
	errs  chan error    // why incoming links for it failed the key check
	keyed chan struct{} // closed once t.PeerKey is known
	used  bool
}

// Listen opens the peer listener on addr ("" means all interfaces, a free
// port: ":0"). Binding all interfaces matters: a socket bound to
// 127.0.0.1 cannot reach other hosts.
func Listen(addr string) (*Peer, error) { return listenWait(addr, 10*time.Second) }

// listenWait is Listen with the time a connection has to say HELLO.
func listenWait(addr string, helloWait time.Duration) (*Peer, error) {
	if addr == "" {
		addr = ":0"
	}
	id, err := newIdentity()
	if err != nil {
		return nil, err
	}
	ln, err := reuseport.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer listener: %w", err)
	}
	p := &Peer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, id: id, helloWait: helloWait, expect: make(map[string]*expected),
		incoming: make(chan struct{}, maxIncoming)}
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

// Fingerprint is this run's link key ("SHA256:..."), for the server to
// pass to the peers of this client's tickets (LINKKEY).
func (p *Peer) Fingerprint() string { return p.id.fp }

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
// that an offerer quick to dial is not turned away; such a link waits for
// the peer's key, which comes with the server's confirmation).
func (p *Peer) Expect(t Ticket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.expect[t.ID]
	if e == nil {
		e = &expected{links: make(chan *Link, 4), errs: make(chan error, 1), keyed: make(chan struct{})}
		p.expect[t.ID] = e
	}
	if t.PeerKey == "" {
		t.PeerKey = e.t.PeerKey
	}
	known := e.t.PeerKey != ""
	e.t = t
	if !known && t.PeerKey != "" {
		close(e.keyed)
	}
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
		select {
		case p.incoming <- struct{}{}:
			go func() {
				defer func() { <-p.incoming }()
				p.serveIncoming(conn)
			}()
		default:
			p.Refused.Add(1)
			conn.Close()
		}
	}
}

// serveIncoming authenticates one incoming connection: HELLO with a ticket
// we expect, from the user the ticket names, within the hello timeout;
// then TLS with the peer's link key, before the link is offered to
// Connect.
func (p *Peer) serveIncoming(conn net.Conn) {
	deadline := time.Now().Add(p.helloWait)
	// Small buffers until the peer has proved itself: HELLO is one short
	// line, and the link over TLS gets buffers of its own (secure).
	l := &Link{conn: conn, r: bufio.NewReaderSize(conn, maxLinkLine+1), w: bufio.NewWriterSize(conn, 256), idle: p.helloWait}
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
	// The peer's key comes with the server's confirmation of the ticket,
	// which may reach us a moment after the peer's HELLO.
	wait := time.NewTimer(time.Until(deadline))
	select {
	case <-e.keyed:
		wait.Stop()
	case <-wait.C:
		p.Refused.Add(1)
		conn.Close()
		return
	}
	p.mu.Lock()
	t = e.t
	p.mu.Unlock()
	l.Path, l.Via, l.How, l.Peer, l.Ticket, l.Offerer = "direct", "accepted from "+conn.RemoteAddr().String(), HowAccepted, t.Peer, t.ID, t.Offerer
	s, err := p.secure(context.Background(), l, t, time.Until(deadline))
	if err != nil {
		p.Refused.Add(1)
		conn.Close()
		if errors.Is(err, ErrPeerKey) {
			select { // for Connect to tell, if nothing else works
			case e.errs <- fmt.Errorf("%s: %w", l.Via, err):
			default:
			}
		}
		return
	}
	select {
	case e.links <- s:
	default:
		s.Close() // more links than anyone could want
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

var errPeerRefused = errors.New("refused by the peer")

// dialPeer makes one direct attempt at addr: connect from our port
// (within dialCtx; primed: with a first SYN of a small TTL, see
// punch.go), then HELLO and TLS both ways (within ctx and the hello
// timeout). how says how the link was made, should it come up.
func (p *Peer) dialPeer(dialCtx, ctx context.Context, t Ticket, opts ConnectOptions, addr string, primed bool, how string) (*Link, error) {
	var conn net.Conn
	var err error
	if primed {
		var raddr *net.TCPAddr
		if raddr, err = net.ResolveTCPAddr("tcp", addr); err == nil {
			conn, err = dialTTL(dialCtx, p.port, raddr, primeTTL)
		}
	} else {
		conn, err = p.Dialer(0).DialContext(dialCtx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return p.linkUp(ctx, conn, t, opts, "dialed "+addr, how)
}

// linkUp makes a link of a connection we dialed: HELLO and TLS both ways
// (within ctx and the hello timeout).
func (p *Peer) linkUp(ctx context.Context, conn net.Conn, t Ticket, opts ConnectOptions, via, how string) (*Link, error) {
	if isSelf(conn) {
		conn.Close()
		return nil, errors.New("dialed our own endpoint")
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	l, err := p.hello(newLink(conn, opts.Idle), t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	l.Path, l.Via, l.How = "direct", via, how
	s, err := p.secure(ctx, l, t, p.helloWait)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
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
// port, read the greeting, RELAY <ticket> <relay-secret>, wait for the
// other side (200), then HELLO and TLS both ways through it. The server
// sees only the ticket and ciphertext.
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
	if t.RelaySecret == "" {
		conn.Close()
		return nil, &relayError{"the server gave no relay secret with the ticket"}
	}
	if _, err := conn.Write([]byte("RELAY " + t.ID + " " + t.RelaySecret + "\n")); err != nil {
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
		return nil, &relayError{clipText(reply)}
	}
	conn.SetDeadline(time.Time{})
	l, err := p.hello(newLinkReader(conn, r, opts.Idle), t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	l.Path, l.Via, l.How = "relay", "relayed by the server", HowRelayed
	s, err := p.secure(ctx, l, t, p.helloWait)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
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

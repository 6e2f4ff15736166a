package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"qchat/protocol"
	"qchat/xfer"
)

// Options tune a connection. Zero values take the defaults.
type Options struct {
	DialTimeout  time.Duration // connecting and reading the greeting (default 10s)
	ReplyTimeout time.Duration // a request without its own deadline (default 30s)
	PingInterval time.Duration // idle time before the client checks the server (default 1m: each PING wakes the server's parked session)
	PingTimeout  time.Duration // time the server has to answer that PING (default PingInterval/2)
	MaxOutbound  int           // bytes queued to the server (default 4 MiB)
	// Peer, when set, is this client's peer listener: the connection to
	// the server is dialed from its port, so that the server observes the
	// endpoint that peers can dial for direct links.
	Peer *xfer.Peer
	// NoTLS speaks clear text (--no-tls): no STARTTLS. Without it a
	// server that refuses STARTTLS is refused (ErrTLSRefused).
	NoTLS bool
	// Keys checks the server's key (tls.go, pin.go); nil for a
	// ServerKeys with the defaults (known_servers, notes on stderr).
	Keys *ServerKeys
}

func (o *Options) defaults() {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.ReplyTimeout <= 0 {
		o.ReplyTimeout = 30 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = time.Minute
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = o.PingInterval / 2
	}
	if o.MaxOutbound <= 0 {
		o.MaxOutbound = 4 << 20
	}
}

// Reply is a complete reply: its code, the text of its last line, and the
// texts of the continuation lines before it.
type Reply struct {
	Code  int
	Text  string
	Lines []string
}

// ErrClosed is returned for requests on a closed connection; the error
// also tells why it closed when the server said so (BYE).
var ErrClosed = errors.New("connection closed")

// ByeError is why a connection ended when the server said so (BYE). It
// is an ErrClosed.
type ByeError struct {
	Reason string // the BYE reason: shutdown, takeover, ping-timeout, ...
	Text   string
}

func (e *ByeError) Error() string {
	return fmt.Sprintf("%v by server: %s (%s)", ErrClosed, e.Text, e.Reason)
}

func (e *ByeError) Unwrap() error { return ErrClosed }

// errNoPong is why the keepalive closes a connection.
var errNoPong = errors.New("server not answering")

// Client is one connection to a qchat server. Its methods are safe for
// concurrent use. Events arrive on Events(); the caller must keep reading
// them (the connection stalls otherwise) until the channel is closed.
type Client struct {
	conn   net.Conn // TLS over raw, or raw with NoTLS
	raw    net.Conn // the TCP connection; closing it ends everything at once
	rd     *protocol.LineReader
	out    *protocol.Outbox
	opts   Options
	server string // the server's name, from its greeting
	cids   bool   // the server takes client ids on MSG (greeting extension "cid")
	resume bool   // the server gives resumption tokens (greeting extension "resume")
	ackTo  bool   // the server takes ACK ..<msgid> (greeting extension "ackto")
	rcpts  bool   // the server takes READ and TYPING (greeting extension "receipts")
	hist   bool   // the server keeps history: HISTORY (greeting extension "history")
	addr   string // the server's address, as dialed
	events chan protocol.Line

	mu      sync.Mutex
	pending map[string]*call
	seq     uint64
	err     error // why the connection ended
	lastIn  time.Time
	me      User
	// observed is our endpoint as the server sees it (ENDPOINTS).
	observed string

	done chan struct{} // closed when the read loop ends
}

// User is an id with its nickname.
type User struct {
	ID   int64
	Nick string
}

type call struct {
	lines []string
	fn    func(Reply, error)
}

// Dial connects to a server and reads its greeting.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts.defaults()
	conn, err := dialServer(ctx, addr, opts)
	if err != nil {
		return nil, dialError(addr, err, opts.DialTimeout)
	}
	c := &Client{
		conn: conn, raw: conn, opts: opts, addr: addr,
		rd:      protocol.NewLineReader(conn, protocol.MaxLine),
		events:  make(chan protocol.Line, 256),
		pending: make(map[string]*call),
		done:    make(chan struct{}),
		lastIn:  time.Now(),
	}
	conn.SetReadDeadline(time.Now().Add(opts.DialTimeout))
	line, err := c.rd.ReadLine()
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, greetingError(addr, err, opts.DialTimeout)
	}
	g, err := protocol.ParseLine(line)
	if err != nil || g.Code != protocol.CodeGreeting {
		conn.Close()
		if err == nil && g.Code >= 400 {
			return nil, &DialError{Addr: addr, Cause: fmt.Sprintf("the server refused: %d %s", g.Code, protocol.Escape(g.Text)), Hint: "try again later", Err: g.Err()}
		}
		return nil, &DialError{Addr: addr, Cause: fmt.Sprintf("it is not a qchat server (it said %q)", protocol.Clip(protocol.Escape(string(line)), 60)),
			Hint: "is the port right?", Err: errNotQchat}
	}
	if !opts.NoTLS {
		keys := opts.Keys
		if keys == nil {
			keys = &ServerKeys{}
		}
		tc, err := startTLS(ctx, conn, c.rd, addr, keys, opts.DialTimeout)
		if err != nil {
			conn.Close()
			var ke *ServerKeyError
			if errors.As(err, &ke) {
				return nil, ke // a warning to show as it is
			}
			if errors.Is(err, ErrTLSRefused) || errors.Is(err, ErrTLSInjected) {
				return nil, &DialError{Addr: addr, Cause: err.Error(), Err: err} // says what to do already
			}
			return nil, &DialError{Addr: addr, Cause: "the encrypted connection (STARTTLS) failed: " + causeText(err),
				Hint: "is it a qchat server of this version?", Err: err}
		}
		c.rd.Close()
		c.conn, c.rd = tc, protocol.NewLineReader(tc, protocol.MaxLine)
		// The greeting again, inside TLS: the name and extensions are
		// taken from it, never from the one in clear (section 1.1).
		if g, err = readTLSGreeting(c.rd, tc, opts.DialTimeout); err != nil {
			tc.Close()
			return nil, &DialError{Addr: addr, Cause: "the encrypted connection (STARTTLS) failed: " + causeText(err),
				Hint: "is it a qchat server of this version?", Err: err}
		}
	}
	c.out = protocol.NewOutbox(c.conn, opts.MaxOutbound, opts.ReplyTimeout, func(err error) { c.fail(err) })
	// "<server-name> qchat/1 ready[ <extension>...]"
	words := strings.Fields(g.Text)
	if len(words) > 0 {
		c.server = words[0]
	}
	c.cids = len(words) > 3 && slices.Contains(words[3:], "cid")
	c.resume = len(words) > 3 && slices.Contains(words[3:], "resume")
	c.ackTo = len(words) > 3 && slices.Contains(words[3:], "ackto")
	c.rcpts = len(words) > 3 && slices.Contains(words[3:], "receipts")
	c.hist = len(words) > 3 && slices.Contains(words[3:], "history")
	go c.readLoop()
	go c.keepalive()
	return c, nil
}

// dialServer connects to the server, from the peer port when there is a
// peer listener. When that port cannot be used for it (the same 4-tuple
// still in TIME_WAIT after a reconnect), it dials from any port: direct
// links to us then need the peer to be dialed by us, or the relay.
func dialServer(ctx context.Context, addr string, opts Options) (net.Conn, error) {
	if opts.Peer != nil {
		conn, err := opts.Peer.Dialer(opts.DialTimeout).DialContext(ctx, "tcp", addr)
		if err == nil || !(errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL)) {
			return conn, err
		}
	}
	d := net.Dialer{Timeout: opts.DialTimeout}
	return d.DialContext(ctx, "tcp", addr)
}

// Peer is the client's peer listener (nil without one).
func (c *Client) Peer() *xfer.Peer { return c.opts.Peer }

// Server is the server's name from its greeting.
func (c *Client) Server() string { return c.server }

// Events is the stream of events (and untagged replies) from the server.
// PING is answered here and not passed on. The channel is closed when the
// connection ends; Err then says why.
func (c *Client) Events() <-chan protocol.Line { return c.events }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (nil while it is up).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Me is the logged-in user (zero before login).
func (c *Client) Me() User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.me
}

func (c *Client) readLoop() {
	defer func() {
		c.raw.Close()
		c.mu.Lock()
		if c.err == nil {
			c.err = ErrClosed
		}
		err, pending := c.err, c.pending
		c.pending = nil
		c.mu.Unlock()
		for _, p := range pending {
			p.fn(Reply{}, err)
		}
		c.rd.Close()
		close(c.events)
		close(c.done)
	}()
	for {
		b, err := c.rd.ReadLine()
		if errors.Is(err, protocol.ErrLineTooLong) {
			continue
		}
		if err != nil {
			c.fail(err)
			return
		}
		l, err := protocol.ParseLine(b)
		if err != nil {
			continue // a line we cannot read is skipped, not fatal
		}
		c.mu.Lock()
		c.lastIn = time.Now()
		c.mu.Unlock()
		switch {
		case l.IsEvent() && l.Kind == "PING":
			c.send("PONG", l.Args[0])
		case l.IsEvent() && l.Kind == "BYE":
			text := l.Args[0]
			if len(l.Args) > 1 {
				text = l.Args[1]
			}
			c.fail(&ByeError{Reason: l.Args[0], Text: text})
			c.events <- l
		case l.IsEvent() || l.Tag == "":
			c.events <- l
		default:
			c.complete(l)
		}
	}
}

// complete adds a reply line to its pending call and finishes the call on
// its last line.
func (c *Client) complete(l protocol.Line) {
	c.mu.Lock()
	p := c.pending[l.Tag]
	if p == nil {
		c.mu.Unlock()
		return // a reply to a request that gave up waiting
	}
	if l.More {
		p.lines = append(p.lines, l.Text)
		c.mu.Unlock()
		return
	}
	delete(c.pending, l.Tag)
	c.mu.Unlock()
	r := Reply{Code: l.Code, Text: l.Text, Lines: p.lines}
	p.fn(r, l.Err())
}

// fail records why the connection ends and closes it.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.raw.Close()
}

// keepalive pings a silent server and closes the connection when it does
// not answer: a dead server (or a cut network) is noticed at most
// PingInterval*5/4 + PingTimeout after the last line it sent.
func (c *Client) keepalive() {
	t := time.NewTicker(c.opts.PingInterval / 4)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		idle := time.Since(c.lastIn)
		c.mu.Unlock()
		if idle < c.opts.PingInterval {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.PingTimeout)
		_, err := c.Do(ctx, "PING", "keepalive")
		cancel()
		if err != nil && !isProtocolError(err) {
			c.fail(fmt.Errorf("%w (no answer to a PING within %s)", errNoPong, c.opts.PingTimeout))
			return
		}
	}
}

func isProtocolError(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe)
}

// send writes a line that has no reply (PONG, ACK).
func (c *Client) send(verb string, args ...string) error {
	b, err := protocol.AppendCommand(nil, "", verb, args...)
	if err != nil {
		return err
	}
	return c.out.Write(b)
}

// Go sends a request and calls fn with its reply, from the read loop (fn
// must not block). Failure replies come with a *protocol.Error.
func (c *Client) Go(verb string, args []string, fn func(Reply, error)) error {
	return c.goID(verb, "", false, args, fn)
}

// goID is Go with the client's own id for the request (MSG id=<cid>, or
// resend=<cid> when resend; "" for none).
func (c *Client) goID(verb, cid string, resend bool, args []string, fn func(Reply, error)) error {
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.seq++
	tag := "c" + strconv.FormatUint(c.seq, 36)
	b, err := protocol.AppendCommandID(nil, tag, verb, cid, resend, args...)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.pending[tag] = &call{fn: fn}
	c.mu.Unlock()
	if err := c.out.Write(b); err != nil {
		c.mu.Lock()
		delete(c.pending, tag)
		c.mu.Unlock()
		return err
	}
	return nil
}

// Do sends a request and waits for its reply, at most until ctx ends (or
// ReplyTimeout when ctx has no deadline).
func (c *Client) Do(ctx context.Context, verb string, args ...string) (Reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.ReplyTimeout)
		defer cancel()
	}
	type result struct {
		r   Reply
		err error
	}
	ch := make(chan result, 1)
	if err := c.Go(verb, args, func(r Reply, err error) { ch <- result{r, err} }); err != nil {
		return Reply{}, err
	}
	select {
	case res := <-ch:
		return res.r, res.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Reply{}, fmt.Errorf("%s: no answer from the server in time", verb)
		}
		return Reply{}, ctx.Err()
	}
}

// Close closes the connection at once.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// Quit logs out politely (QUIT), then closes.
func (c *Client) Quit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// The server closes the connection after its reply: that end is the
	// one we asked for, not an error.
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	c.mu.Unlock()
	c.Do(ctx, "QUIT")
	c.out.Close(time.Second)
	return c.Close()
}

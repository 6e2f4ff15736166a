package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"qchat/protocol"
	"qchat/xfer"
)

// OfferEvent is an OFFER: a user asks for a direct chat or offers files.
type OfferEvent struct {
	Ticket   string
	From     int64
	FromNick string
	Time     time.Time
	Purpose  string // "chat" or "file"
	Count    int    // file: how many files
	Bytes    int64  // file: their size in all
	Name     string // file: the display name (a file's name, "folder/", "N files")
}

// ParseOffer reads an OFFER event.
func ParseOffer(l protocol.Line) (OfferEvent, error) {
	bad := fmt.Errorf("malformed OFFER event")
	if l.Kind != "OFFER" || len(l.Args) < 5 {
		return OfferEvent{}, bad
	}
	from, ok := protocol.ParseID(l.Args[1])
	t, err := protocol.ParseTime(l.Args[3])
	if !ok || err != nil {
		return OfferEvent{}, bad
	}
	o := OfferEvent{Ticket: l.Args[0], From: from, FromNick: l.Args[2], Time: t, Purpose: l.Args[4]}
	switch {
	case o.Purpose == "chat" && len(l.Args) == 5:
	case o.Purpose == "file" && len(l.Args) == 8:
		n, err1 := strconv.Atoi(l.Args[5])
		size, err2 := strconv.ParseInt(l.Args[6], 10, 64)
		if err1 != nil || err2 != nil || n < 1 || size < 0 {
			return OfferEvent{}, bad
		}
		o.Count, o.Bytes, o.Name = n, size, l.Args[7]
	default:
		return OfferEvent{}, bad
	}
	return o, nil
}

// ParseCancel reads a CANCEL event: the offer's ticket and why.
func ParseCancel(l protocol.Line) (ticket, why string, err error) {
	if l.Kind != "CANCEL" || len(l.Args) != 2 {
		return "", "", fmt.Errorf("malformed CANCEL event")
	}
	return l.Args[0], l.Args[1], nil
}

// offerLinkWait bounds how long an accepted ticket is expected before the
// server's answer says until when (its link-by).
const offerLinkWait = 3 * time.Minute

// offerWait bounds the wait for an answer to an offer; the server refuses
// unanswered offers well before (serve --offer-timeout).
const offerWait = time.Hour

// Offer asks for a direct link to who — purpose "chat", or "file" with
// the offer's summary — and waits until the other side answers: the ticket
// when accepted, a *protocol.Error otherwise (551 refused, 454 no answer
// in time, 453 not online).
func (c *Client) Offer(ctx context.Context, who, purpose string, o *xfer.Offer) (xfer.Ticket, error) {
	if purpose != "file" {
		return c.offer(ctx, "chat", "CHAT", who)
	}
	count, total, name := o.Summary()
	return c.offer(ctx, "file", "FILE", who, strconv.Itoa(count), strconv.FormatInt(total, 10), displayName(name))
}

func (c *Client) offer(ctx context.Context, purpose, verb string, args ...string) (xfer.Ticket, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, offerWait)
		defer cancel()
	}
	r, err := c.Do(ctx, verb, args...)
	if err != nil {
		return xfer.Ticket{}, err
	}
	if verb == "PUT" {
		return parseHostTicket(r.Text, true)
	}
	t, err := parseTicket(r.Text, purpose)
	t.Offerer = true
	return t, err
}

// displayName makes a display name fit the FILE line: one line of at most
// 255 bytes without control characters.
func displayName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, protocol.Escape(name))
	name = strings.TrimLeft(name, " ")
	if name == "" {
		name = "file"
	}
	return protocol.Clip(name, 250)
}

// Answer accepts or refuses an offer. Accepted, it returns the ticket.
func (c *Client) Answer(ctx context.Context, accept bool, o OfferEvent) (xfer.Ticket, error) {
	verb := "REJECT"
	if accept {
		verb = "ACCEPT"
		if p := c.opts.Peer; p != nil {
			// The offerer may dial as soon as the server tells it.
			p.Expect(xfer.Ticket{ID: o.Ticket, Purpose: o.Purpose, Peer: o.From, Expires: time.Now().Add(offerLinkWait)})
		}
	}
	r, err := c.Do(ctx, verb, o.Purpose, o.Ticket)
	if err != nil || !accept {
		if accept && c.opts.Peer != nil {
			c.opts.Peer.Forget(o.Ticket)
		}
		return xfer.Ticket{}, err
	}
	return parseTicket(r.Text, o.Purpose)
}

// parseTicket reads "<ticket> <peer-id> <peer-endpoint> <link-by>
// <peer-key> <relay-secret> [port=<peer-port>] [<endpoint>...]": the
// peer's own peer port, when it said it, tells whether its NAT changed
// the port; the endpoints at the end are the ones the peer announced
// (ENDPOINTS), dialed first.
func parseTicket(text, purpose string) (xfer.Ticket, error) {
	f := strings.Fields(text)
	bad := fmt.Errorf("unexpected ticket reply %q", protocol.Clip(text, 80))
	if len(f) < 6 || len(f) > 7+maxPeerEndpoints {
		return xfer.Ticket{}, bad
	}
	peer, ok := protocol.ParseID(f[1])
	by, err := protocol.ParseTime(f[3])
	if !ok || err != nil || !protocol.ValidLinkKey(f[4]) {
		return xfer.Ticket{}, bad
	}
	t := xfer.Ticket{ID: f[0], Purpose: purpose, Peer: peer, PeerAddr: f[2], Expires: by, PeerKey: f[4], RelaySecret: f[5]}
	eps := f[6:]
	if len(eps) > 0 && strings.HasPrefix(eps[0], "port=") {
		port, err := strconv.ParseUint(strings.TrimPrefix(eps[0], "port="), 10, 16)
		if err != nil {
			return xfer.Ticket{}, bad
		}
		t.PeerPort, eps = int(port), eps[1:]
	}
	if len(eps) > maxPeerEndpoints {
		return xfer.Ticket{}, bad
	}
	for _, ep := range eps {
		if _, err := netip.ParseAddrPort(ep); err != nil {
			return xfer.Ticket{}, bad
		}
	}
	t.PeerAddrs = eps
	return t, nil
}

// Link connects the peer link of a ticket (direct, or through this
// client's server as relay).
func (c *Client) Link(ctx context.Context, t xfer.Ticket, opts xfer.ConnectOptions) (*xfer.Link, error) {
	if c.opts.Peer == nil {
		return nil, errors.New("no peer listener")
	}
	opts.Server = c.addr
	opts.NAT = c.NAT()
	return c.opts.Peer.Connect(ctx, t, opts)
}

// WatchMoves calls fn (on its own goroutine) when l moves to another
// path while in use. The returned channel is closed once no move can
// come any more: l moved, or its attempts to move are over (at the
// latest when it is closed).
func WatchMoves(l *xfer.Link, fn func(xfer.Route)) <-chan struct{} {
	done := make(chan struct{})
	moves := l.Moves()
	if moves == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for r := range moves {
			fn(r)
		}
	}()
	return done
}

// maxPeerEndpoints bounds the endpoints a peer announces (ENDPOINTS).
const maxPeerEndpoints = 4

// NAT is the kind of NAT this client is behind, from the endpoint the
// server sees of it (ENDPOINTS) and its own addresses and peer port:
// xfer.NATNone, NATPortKept, NATPortChanged, or NATUnknown before the
// server said.
func (c *Client) NAT() string {
	c.mu.Lock()
	observed := c.observed
	c.mu.Unlock()
	if c.opts.Peer == nil {
		return xfer.NATUnknown
	}
	return c.opts.Peer.NATKind(observed)
}

// TransferOptions tune SendFiles.
type TransferOptions struct {
	Connect xfer.ConnectOptions
	Rate    int64 // bytes per second, 0 for no limit
	Retries int   // further tries after a link failed or stalled (default 3)
	// Note, when set, hears what happens: the path taken, retries.
	Note func(string)
	// Link and Moved, when set, hear of each link (instead of Note) and
	// of its move to a direct connection while the files cross.
	Link  func(*xfer.Link)
	Moved func(xfer.Route)
	// Offline leaves the files on the server for the recipient (PUT:
	// serve --offline-files) instead of offering them to the recipient.
	Offline bool
}

// SendFiles offers o to who and sends it, retrying (with resume) when the
// link fails or stalls: each try is a new offer of the files not yet
// through, under the same display name, which a receiver that accepted
// the first one takes without asking again. It returns the outcome of
// every file; the error is the last failure (ErrRefused and protocol
// errors end it at once).
func (c *Client) SendFiles(ctx context.Context, who string, o *xfer.Offer, opts TransferOptions, m xfer.Meter) (xfer.SendResult, error) {
	return sendFiles(ctx, c, who, o, opts, m)
}

// linker is what SendFiles needs: a Client, or a Session (which waits for
// its connection to come back).
type linker interface {
	offer(ctx context.Context, purpose, verb string, args ...string) (xfer.Ticket, error)
	Link(ctx context.Context, t xfer.Ticket, opts xfer.ConnectOptions) (*xfer.Link, error)
	gone() bool // the connection to the server has ended for good
}

// gone reports whether the connection has ended.
func (c *Client) gone() bool { return c.Err() != nil }

func sendFiles(ctx context.Context, c linker, who string, o *xfer.Offer, opts TransferOptions, m xfer.Meter) (xfer.SendResult, error) {
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	note := opts.Note
	if note == nil {
		note = func(string) {}
	}
	final := make(map[string]*xfer.FileResult)
	order := make([]string, 0, len(o.Items))
	for _, it := range o.Items {
		order = append(order, it.Name)
		final[it.Name] = &xfer.FileResult{Name: it.Name, Size: it.Size, Err: errors.New("not sent")}
	}
	path := ""
	result := func() xfer.SendResult {
		r := xfer.SendResult{Path: path}
		for _, n := range order {
			r.Files = append(r.Files, *final[n])
		}
		return r
	}
	_, _, name := o.Summary()
	name = displayName(name)
	remaining := o
	var lastErr error
	r := retries{n: opts.Retries, note: note}
	for try := 0; try <= opts.Retries; try++ {
		if err := r.wait(ctx, try, lastErr); err != nil {
			return result(), err
		}
		count, total, _ := remaining.Summary()
		verb := "FILE"
		if opts.Offline {
			verb = "PUT"
			opts.Connect.ForceRelay = true // the server is the other end
		}
		t, err := c.offer(ctx, "file", verb, who, strconv.Itoa(count), strconv.FormatInt(total, 10), name)
		if err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) && !(try > 0 && pe.Code == protocol.CodeOffline) {
				return result(), err // refused, timed out, no such user: final
			}
			if !errors.As(err, &pe) && c.gone() {
				return result(), err // our connection to the server is gone
			}
			lastErr = err
			continue
		}
		link, err := c.Link(ctx, t, opts.Connect)
		if err != nil {
			if errors.Is(err, xfer.ErrNoRelay) || errors.Is(err, xfer.ErrRelayRefused) && opts.Connect.ForceRelay {
				// No direct path and no relay: the next try would end
				// the same.
				return result(), err
			}
			lastErr = err
			continue
		}
		if opts.Link != nil {
			opts.Link(link)
		} else {
			note("sending over a " + link.Path + " link (" + link.Via + ")")
		}
		watched := WatchMoves(link, func(r xfer.Route) {
			if opts.Moved != nil {
				opts.Moved(r)
			} else {
				note("now " + r.Path + " (" + r.Via + ")")
			}
		})
		link.SetRate(opts.Rate)
		res, err := xfer.Send(ctx, link, remaining, m)
		<-watched
		path = link.Route().Path
		done := make(map[string]bool)
		for _, f := range res.Files {
			fr := final[f.Name]
			moved := fr.Moved
			if fr.Err == nil {
				continue
			}
			*fr = f
			fr.Moved += moved
			if f.Err == nil || errors.Is(f.Err, xfer.ErrSkipped) {
				done[f.Name] = true // through, or refused for good: not offered again
			}
		}
		if errors.Is(err, xfer.ErrRefused) || ctx.Err() != nil {
			return result(), err
		}
		remaining = remaining.Remaining(done)
		if len(remaining.Items) == 0 {
			return result(), nil
		}
		if err == nil {
			// The link held, but some files failed on the receiver's side
			// (hash mismatch, no room): one more try for those.
			err = fmt.Errorf("%d files failed", len(remaining.Items))
		}
		lastErr = err
	}
	return result(), lastErr
}

// retries paces the tries of a transfer: none before the first, then
// 0.5 s, doubling up to 8 s, each said to note with why.
type retries struct {
	n       int
	note    func(string)
	backoff time.Duration
}

// wait waits before try (0: the first, at once); ctx's error if it ended.
func (r *retries) wait(ctx context.Context, try int, why error) error {
	if try == 0 {
		return nil
	}
	if r.backoff == 0 {
		r.backoff = 500 * time.Millisecond
	}
	r.note(fmt.Sprintf("retrying in %s (%d of %d): %s", r.backoff, try, r.n, causeText(why)))
	select {
	case <-time.After(r.backoff):
	case <-ctx.Done():
		return ctx.Err()
	}
	r.backoff = min(2*r.backoff, 8*time.Second)
	return nil
}

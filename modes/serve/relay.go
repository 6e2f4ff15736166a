package serve

import (
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// The relay carries the bytes of one direct link whose peers could not
// reach each other: both send RELAY <ticket> <secret> on a fresh
// connection to the server port; the server pairs the two connections of
// an accepted ticket and copies bytes both ways until either side closes
// or the link idles. Only a ticket the server handed out, accepted, within
// its link window, and only for the holders of the ticket: each side
// proves itself with the relay secret it got in its own 260 reply, over
// its logged-in session, and each side's slot is taken once. A ticket seen
// on the wire is not enough: never an open relay, never a stolen slot.
// What the relay carries is the peers' TLS (the link keys are pinned end
// to end), so the relay neither reads nor changes it. `serve --no-relay`
// turns it off.

// relayHalf is the first side of a ticket waiting for the second.
type relayHalf struct {
	conn    net.Conn
	pending []byte // read by the session's line reader past the RELAY line
	matched chan *relayHalf
	once    sync.Once
	failure chan string
	rel     sync.Once
	release func() // gives back its place under the relay caps (relays.take); nil for none
}

// done gives back h's place under the relay caps, once.
func (h *relayHalf) done() {
	h.rel.Do(func() {
		if h.release != nil {
			h.release()
		}
	})
}

func (h *relayHalf) fail(why string) {
	h.once.Do(func() { h.failure <- why })
}

// end closes a first side that will not be relayed, with a last line,
// and a second side that came at that very moment.
func (h *relayHalf) end(line string) {
	h.conn.Write([]byte(line + "\n"))
	h.conn.Close()
	select {
	case other := <-h.matched:
		other.conn.Write([]byte(line + "\n"))
		other.conn.Close()
		other.done()
	default:
	}
}

// relays tracks relayed links so that Shutdown can end them, and counts
// their sides per user and per source address (--relay-per-user,
// --relay-per-addr).
type relays struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	quit    chan struct{} // closed by closeAll: waiting sides give up
	perUser map[int64]int
	perAddr map[string]int
}

func newRelays() *relays {
	return &relays{conns: make(map[net.Conn]struct{}), quit: make(chan struct{}),
		perUser: make(map[int64]int), perAddr: make(map[string]int)}
}

// Errors of relays.take: the reply lines of a RELAY past a cap.
var (
	errRelayUser = func(n int) error {
		return protocol.Errorf(protocol.CodeRateLimit, "too many relayed links of yours at once (%d, serve --relay-per-user); end one and try again", n)
	}
	errRelayAddr = func(n int) error {
		return protocol.Errorf(protocol.CodeRateLimit, "too many relayed links from your address at once (%d, serve --relay-per-addr); end one and try again", n)
	}
)

// take counts one relay side of user from addr, or refuses it when
// either has its cap of sides (0: no cap) already. The returned func
// gives the place back.
func (r *relays) take(user int64, addr string, perUser, perAddr int) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if perUser > 0 && r.perUser[user] >= perUser {
		return nil, errRelayUser(perUser)
	}
	if perAddr > 0 && r.perAddr[addr] >= perAddr {
		return nil, errRelayAddr(perAddr)
	}
	r.perUser[user]++
	r.perAddr[addr]++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.perUser[user]--; r.perUser[user] <= 0 {
			delete(r.perUser, user)
		}
		if r.perAddr[addr]--; r.perAddr[addr] <= 0 {
			delete(r.perAddr, addr)
		}
	}, nil
}

// sides is how many relay sides user and addr hold.
func (r *relays) sides(user int64, addr string) (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.perUser[user], r.perAddr[addr]
}

func (r *relays) add(c net.Conn) {
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
}

func (r *relays) remove(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// closeAll ends every relayed link and waits for the copies to stop.
func (r *relays) closeAll() {
	close(r.quit)
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// maxRelays bounds the relayed links at once.
const maxRelays = 256

// RELAY <ticket> <secret>
//
// Before login, on a connection of its own (it needs no password: the
// secret is the proof). Answered 200 once the other side has come too;
// from then on the connection carries the peers' bytes.
func (s *session) cmdRelay(c *protocol.Command) error {
	if s.srv.off != nil && s.loggedIn() == 0 {
		// A link to the server itself (offline files): not relayed, so
		// --no-relay does not stop it.
		if ht, mine := s.srv.off.take(c.Args[0], c.Args[1]); mine {
			if ht == nil {
				return protocol.Errorf(protocol.CodeForbidden, "no such ticket or secret, or not one that may be used now")
			}
			s.relayToHost(ht)
			return nil
		}
	}
	if !s.srv.cfg.Relay {
		return protocol.Errorf(protocol.CodeNotYet, "this server does not relay (serve --no-relay)")
	}
	if s.loggedIn() != 0 {
		return protocol.Errorf(protocol.CodeSequence, "RELAY goes on a connection of its own, before login")
	}
	ticket, secret := c.Args[0], c.Args[1]
	of := s.srv.offers
	now := time.Now()
	s.srv.relays.mu.Lock()
	busy := len(s.srv.relays.conns) >= 2*maxRelays
	s.srv.relays.mu.Unlock()
	if busy {
		return protocol.Errorf(protocol.CodeUnavailable, "too many relayed links; try later")
	}

	// Take the connection out of the session: from here on its bytes are
	// the peers'.
	me := &relayHalf{conn: s.conn, matched: make(chan *relayHalf, 1), failure: make(chan string, 1)}
	second := false
	of.mu.Lock()
	o := of.byTicket[ticket]
	side := -1
	if o != nil && o.state == offerAccepted {
		side = o.side(secret)
	}
	switch {
	case side < 0 || now.After(o.linkBy) || o.relayed:
		of.mu.Unlock()
		return protocol.Errorf(protocol.CodeForbidden, "no such ticket or secret, or not one that may be relayed now")
	case o.used[side]:
		of.mu.Unlock()
		return protocol.Errorf(protocol.CodeForbidden, "this side of the ticket came to the relay already")
	}
	// A side that came through the node of its user (a cluster's
	// proxyRelay) took its place under the caps there.
	if proxied := side == sideFrom && o.fromNode != ""; !s.lim.exempt && !proxied {
		user := o.fromID
		if side == sideTo {
			user = o.toID
		}
		l := s.srv.cfg.Limits
		release, err := s.srv.relays.take(user, s.lim.addr, l.RelayPerUser, l.RelayPerAddr)
		if err != nil {
			of.mu.Unlock() // this side may come again once a link of its ended
			s.srv.logRefusal(reasonRelayLimit, s.lim.addr, "relay refused", "conn", s.id, "user", user, "err", err)
			return err
		}
		me.release = release
	}
	switch {
	case o.toNode != "":
		// The other side is on another node: they meet there
		// (offers_cluster.go).
		o.used[side], o.relayed = true, true
		node, linkBy := o.toNode, o.linkBy
		of.mu.Unlock()
		s.handOver(me)
		s.srv.relays.wg.Add(1)
		go s.srv.proxyRelay(me, node, ticket, secret, linkBy)
		return nil
	case o.relay == nil:
		o.used[side] = true
		o.relay = me
	default:
		o.used[side] = true
		second = true
		o.relayed = true
	}
	first, linkBy, from, to := o.relay, o.linkBy, o.fromID, o.toID
	if second {
		o.relay = nil
	}
	of.mu.Unlock()

	s.handOver(me)
	if second {
		first.matched <- me // the first side's goroutine runs the copy
		return nil
	}
	s.srv.relays.add(me.conn)
	s.srv.relays.wg.Add(1)
	go func() {
		defer s.srv.relays.wg.Done()
		defer me.done()
		defer s.srv.relays.remove(me.conn)
		t := time.NewTimer(time.Until(linkBy))
		defer t.Stop()
		relay := func(other *relayHalf) {
			s.srv.relays.add(other.conn)
			defer other.done()
			defer s.srv.relays.remove(other.conn)
			s.srv.log.Info("relay open", "from", from, "to", to)
			n1, n2 := splice(me, other, s.srv.cfg.RelayIdle)
			s.srv.log.Info("relay closed", "from", from, "to", to, "bytes", n1+n2)
		}
		select {
		case other := <-me.matched:
			relay(other)
		case <-s.srv.relays.quit:
			me.end("421 server shutting down")
		case why := <-me.failure:
			me.end("454 " + why)
		case <-t.C:
			of.mu.Lock()
			alone := o.relay == me
			if alone {
				o.relay = nil
			}
			of.mu.Unlock()
			if !alone {
				relay(<-me.matched) // the other side came at the last moment
				return
			}
			me.end("454 the other side did not come in time")
		}
	}()
	return nil
}

// side returns which side of the offer a relay secret is (sideFrom,
// sideTo), or -1 for neither, comparing in constant time. Under of.mu.
func (o *offer) side(secret string) int {
	side := -1
	for i, s := range o.secrets {
		if s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(secret)) == 1 {
			side = i
		}
	}
	return side
}

// handOver ends the session's own use of its connection without closing
// it: the read loop stops, the sweeper skips it, and what the line reader
// had read past the current line goes with the connection.
func (s *session) handOver(h *relayHalf) {
	reason := "relay"
	s.reason.Store(&reason)
	s.closed.Store(true)
	s.out.Close(time.Second) // the greeting and earlier replies are out
	h.pending = append([]byte(nil), s.rd.Buffered()...)
}

// splice tells both sides the link is open, then copies both ways until
// one side ends or nothing moves for idle. It returns the bytes each way.
func splice(a, b *relayHalf, idle time.Duration) (int64, int64) {
	open := []byte("200 relay open\n")
	a.conn.Write(open)
	b.conn.Write(open)
	// The link is idle when neither direction moves: a file crossing one
	// way while the other way is quiet is not a stalled link.
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	type ended struct {
		n     int64
		clean bool
	}
	done := make(chan ended, 2)
	go func() { n, ok := copyIdle(b.conn, a.conn, a.pending, idle, &last); done <- ended{n, ok} }()
	go func() { n, ok := copyIdle(a.conn, b.conn, b.pending, idle, &last); done <- ended{n, ok} }()
	e1 := <-done
	// One direction ended. Cleanly (a half-close, passed on): the other
	// goes on to its own end or the idle timeout, since a peer that
	// moves its link to a direct connection half-closes here first and
	// may still be owed bytes. Broken: both end now.
	if !e1.clean {
		a.conn.Close()
		b.conn.Close()
	}
	e2 := <-done
	a.conn.Close()
	b.conn.Close()
	return e1.n, e2.n
}

// copyIdle copies src to dst (first the bytes already read from src)
// until EOF, an error, or no progress either way (last, shared by both
// directions) for idle. It copies in chunks of relayChunk through
// TCPConn.ReadFrom, which splices socket to socket in the kernel (no copy
// through this process), refreshing the read deadline between chunks.
func copyIdle(dst, src net.Conn, first []byte, idle time.Duration, last *atomic.Int64) (n int64, clean bool) {
	if len(first) > 0 {
		dst.SetWriteDeadline(time.Now().Add(idle))
		if _, err := dst.Write(first); err != nil {
			return 0, false
		}
		n += int64(len(first))
	}
	rf, ok := dst.(io.ReaderFrom)
	if !ok {
		rf = readerFrom{dst}
	}
	// Only reads have deadlines: a write timing out inside a splice would
	// lose the bytes it holds. A side that stops reading blocks our write;
	// then nothing moves, the other direction's reads time out too, and
	// closing both ends the write.
	dst.SetWriteDeadline(time.Time{})
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		k, err := rf.ReadFrom(&io.LimitedReader{R: src, N: relayChunk})
		n += k
		if k > 0 {
			last.Store(time.Now().UnixNano())
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, last.Load())) < idle {
				continue // quiet this way, busy the other way
			}
			return n, false
		}
		if k == 0 { // EOF: pass the half-close on
			if tc, ok := dst.(*net.TCPConn); ok {
				return n, tc.CloseWrite() == nil
			}
			return n, false
		}
	}
}

// relayChunk is what one splice moves before the deadlines are refreshed:
// small enough that a slow but live link is not taken for a stalled one.
const relayChunk = 256 << 10

// readerFrom is io.Copy for a writer without ReadFrom.
type readerFrom struct{ w io.Writer }

func (r readerFrom) ReadFrom(src io.Reader) (int64, error) { return io.Copy(r.w, src) }

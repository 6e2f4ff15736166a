package serve

import (
	"crypto/rand"
	"encoding/base32"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"qchat/protocol"
)

// Direct links: the server brokers them and hands out proof. A asks for a
// link to B (CHAT, or FILE with a summary of the files); B is told (OFFER)
// and answers (ACCEPT or REJECT, or the offer times out); on ACCEPT both
// get the same single-use ticket with the other's peer endpoint as this
// server observes it (the address and port of their connection here, which
// clients dial from their peer listener), the other's link key (LINKKEY:
// both must have sent one) and a relay secret of their own. The peers then
// connect, prove the ticket to each other and run TLS with both link keys
// pinned; the server takes no part unless they ask it to relay (RELAY
// <ticket> <secret>, relay.go), and then it carries only ciphertext. The
// server never sees what a direct link carries.
//
// Lock order: offers.mu, then a session's outbox. Nothing blocks under it.

// offerState is where an offer is in its life.
type offerState uint8

const (
	offerPending  offerState = iota // B has not answered
	offerAccepted                   // the ticket is out; links may start until linkBy
)

type offer struct {
	ticket   string
	purpose  string // "chat" or "file"
	from     *session
	to       *session // nil when dropped (blocked): nobody is asked, it times out
	fromID   int64
	toID     int64
	tag      string // the CHAT/FILE request's tag: its reply waits for the answer
	summary  string // file: "<count> <bytes> <name>"
	answerBy time.Time
	linkBy   time.Time // accepted: no link (and no relay) may start after
	state    offerState
	keys     [2]string  // link keys: [sideFrom] the offerer's, [sideTo] the target's (at ACCEPT)
	secrets  [2]string  // relay secrets, by side, made at ACCEPT
	used     [2]bool    // a side came to RELAY: its slot is taken for good
	relay    *relayHalf // the first side waiting in RELAY
	relayed  bool       // both sides met in RELAY: the ticket is used

	// Between nodes of a cluster (offers_cluster.go): the target's node
	// (from is this node's session, to is nil), or the offerer's (to is
	// this node's session, from is nil, and its nickname, endpoint and
	// further endpoints are here).
	toNode, fromNode              string
	fromNick, fromRemote, fromEps string
}

// The two sides of an offer.
const (
	sideFrom = 0 // the offerer
	sideTo   = 1 // the one asked
)

// Limits of the broker.
const (
	maxOffersFrom = 32              // pending offers one user may have made
	linkWindow    = 2 * time.Minute // after ACCEPT, time for the peers to connect
)

type offers struct {
	mu        sync.Mutex
	byTicket  map[string]*offer
	keys      map[*session]string   // LINKKEY of each logged-in session that sent one
	endpoints map[*session][]string // ENDPOINTS of each logged-in session that sent some
}

func newOffers() *offers {
	return &offers{byTicket: make(map[string]*offer), keys: make(map[*session]string), endpoints: make(map[*session][]string)}
}

// LINKKEY <fingerprint>
//
// After login: the fingerprint ("SHA256:" and 43 base64 characters) of
// the key this session's direct links will prove. The server passes it to
// the other side of every ticket it grants this session; sent again, it
// replaces the key for later tickets. CHAT, FILE and ACCEPT of a chat or
// file need one.
func (s *session) cmdLinkKey(c *protocol.Command) error {
	fp := c.Args[0]
	if !protocol.ValidLinkKey(fp) {
		return protocol.Errorf(protocol.CodeSyntax, "usage: LINKKEY SHA256:<43 base64 characters>")
	}
	of := s.srv.offers
	of.mu.Lock()
	of.keys[s] = fp
	of.mu.Unlock()
	s.replyf(c.Tag, protocol.CodeOK, "link key %s", fp)
	return nil
}

// errNoLinkKey refuses a direct link to a session without a link key.
var errNoLinkKey = protocol.Errorf(protocol.CodeSequence,
	"direct links are end-to-end encrypted: send LINKKEY <fingerprint> first (qchat chat and recv do)")

// newTicket returns 130 random bits as 26 lower-case base32 letters: a
// word on the wire, unguessable.
func newTicket() string {
	var b [17]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:26]
}

// CHAT <id|nick>
//
// Answered once B answers: 260 <ticket> <B-id> <B-endpoint> <link-by>,
// 551 refused, 454 no answer in time, 453 not online.
func (s *session) cmdChat(c *protocol.Command) error {
	return s.offer(c, "chat", "")
}

// FILE <id|nick> <count> <bytes> <name>
//
// Answered like CHAT. The summary (count, bytes, a display name) is what B
// is shown; the list of files goes over the link itself.
func (s *session) cmdFile(c *protocol.Command) error {
	count, ok1 := protocol.ParseID(c.Args[1])
	size, err := strconv.ParseInt(c.Args[2], 10, 64)
	if !ok1 || count > 100_000 || err != nil || size < 0 || c.Args[2][0] == '+' {
		return protocol.Errorf(protocol.CodeSyntax, "usage: FILE <id|nick> <count> <bytes> <name> (count 1 to 100000, bytes >= 0)")
	}
	name := c.Args[3]
	if err := protocol.CheckText(name, 255); err != nil {
		return err
	}
	if protocol.Escape(name) != name {
		return protocol.Errorf(protocol.CodeSyntax, "FILE: the name may not hold control characters")
	}
	return s.offer(c, "file", strconv.FormatInt(count, 10)+" "+strconv.FormatInt(size, 10)+" "+name)
}

// offer registers an offer from s and tells its target; the request is
// answered later (answer, expire, or a session's end).
func (s *session) offer(c *protocol.Command, purpose, summary string) error {
	a, err := s.target(c.Args[0])
	if err != nil {
		return err
	}
	me := s.loggedIn()
	if a.id == me {
		return protocol.Errorf(protocol.CodeSyntax, "a direct link to yourself? no")
	}
	to := s.srv.hub.session(a.id)
	toNode := ""
	if to == nil && s.srv.cl != nil {
		toNode, _, _, _ = s.srv.cl.Where(a.id) // on another node (offers_cluster.go)
	}
	if to == nil && toNode == "" || !s.srv.seesPresence(me, a.id) { // friends mode: a non-friend looks offline
		return protocol.Errorf(protocol.CodeOffline, "%d is not online", a.id)
	}
	if s.srv.soc.blocked(a.id, me) {
		to, toNode = nil, "" // dropped without telling: it will time out like any unanswered offer
	}
	of := s.srv.offers
	of.mu.Lock()
	key := of.keys[s]
	if key == "" {
		of.mu.Unlock()
		return errNoLinkKey
	}
	o := &offer{ticket: newTicket(), purpose: purpose, from: s, to: to, fromID: me, toID: a.id, tag: c.Tag,
		summary: summary, answerBy: time.Now().Add(s.srv.cfg.OfferTimeout), toNode: toNode}
	o.keys[sideFrom] = key
	n := 0
	for _, x := range of.byTicket {
		if x.from == s && x.state == offerPending {
			n++
		}
	}
	if n >= maxOffersFrom {
		of.mu.Unlock()
		return protocol.Errorf(protocol.CodeRateLimit, "%d offers already wait for an answer", n)
	}
	of.byTicket[o.ticket] = o
	eps := of.moreEndpoints(s)
	of.mu.Unlock()
	if toNode != "" {
		s.srv.sendOffer(toNode, offerMsg{Kind: "offer", Ticket: o.ticket, From: me, To: a.id, Purpose: purpose,
			Summary: summary, Key: key, Remote: s.remote, Eps: eps})
	}
	if to != nil {
		args := []string{o.ticket, idStr(me), s.nickname(), protocol.FormatTime(time.Now()), purpose}
		if summary != "" {
			args = append(args, summary)
		}
		to.send(protocol.AppendEvent(nil, "OFFER", args...))
	}
	s.srv.log.Info("offer", "conn", s.id, "user", me, "to", a.id, "purpose", purpose)
	return nil
}

// answerOffer handles ACCEPT chat|file <ticket> and REJECT chat|file <ticket>.
func (s *session) answerOffer(c *protocol.Command, accept bool) error {
	purpose, ticket := strings.ToLower(c.Args[0]), c.Args[1]
	of := s.srv.offers
	of.mu.Lock()
	o := of.byTicket[ticket]
	if o != nil && o.fromNode != "" {
		return of.answerMirrorLocked(s, c, o, accept) // unlocks
	}
	if o == nil || o.to != s || o.purpose != purpose || o.state != offerPending {
		of.mu.Unlock()
		return protocol.Errorf(protocol.CodeSequence, "no %s offer %s waits for your answer", purpose, protocol.Clip(ticket, 30))
	}
	key := of.keys[s]
	if accept && key == "" {
		of.mu.Unlock()
		return errNoLinkKey
	}
	if !accept {
		delete(of.byTicket, ticket)
		of.mu.Unlock()
		o.from.replyf(o.tag, protocol.CodeRefused, "%d refused the %s", o.toID, purpose)
		s.replyf(c.Tag, protocol.CodeOK, "refused the %s from %d", purpose, o.fromID)
		return nil
	}
	o.state = offerAccepted
	o.linkBy = time.Now().Add(linkWindow)
	o.keys[sideTo] = key
	o.secrets = [2]string{newTicket(), newTicket()}
	fromEps, toEps := of.moreEndpoints(o.from), of.moreEndpoints(s)
	of.mu.Unlock()
	// Each side gets, over its own session, the other's endpoint and key
	// and its own relay secret.
	by := protocol.FormatTime(o.linkBy)
	s.srv.sendTogether(o.from, s,
		func() {
			o.from.replyf(o.tag, protocol.CodeTicket, "%s %d %s %s %s %s%s", o.ticket, o.toID, s.remote, by, o.keys[sideTo], o.secrets[sideFrom], toEps)
		},
		func() {
			s.replyf(c.Tag, protocol.CodeTicket, "%s %d %s %s %s %s%s", o.ticket, o.fromID, o.from.remote, by, o.keys[sideFrom], o.secrets[sideTo], fromEps)
		})
	s.srv.log.Info("offer accepted", "conn", s.id, "user", o.toID, "from", o.fromID, "purpose", purpose)
	return nil
}

// expire times out unanswered offers and forgets accepted ones whose link
// window is over. Called by the sweeper.
func (of *offers) expire(now time.Time, timeout time.Duration) {
	var late []*offer
	of.mu.Lock()
	for t, o := range of.byTicket {
		switch {
		case o.state == offerPending && now.After(o.answerBy):
			late = append(late, o)
			delete(of.byTicket, t)
		case o.state == offerAccepted && now.After(o.linkBy):
			delete(of.byTicket, t)
			if o.relay != nil {
				o.relay.fail("the other side did not come")
			}
		}
	}
	of.mu.Unlock()
	for _, o := range late {
		if o.from == nil { // a mirror: the offerer's node answers it
			o.to.send(protocol.AppendEvent(nil, "CANCEL", o.ticket, "timeout"))
			continue
		}
		o.from.replyf(o.tag, protocol.CodeTimeout, "no answer from %d within %s", o.toID, timeout)
		if o.to != nil {
			o.to.send(protocol.AppendEvent(nil, "CANCEL", o.ticket, "timeout"))
		}
	}
}

// sessionGone ends the pending offers of a session that closed (the other
// side hears of it) and forgets its link key. Accepted offers live on
// until their window ends (the peers may already be linked).
func (of *offers) sessionGone(s *session) {
	var gone []*offer
	of.mu.Lock()
	delete(of.keys, s)
	delete(of.endpoints, s)
	for t, o := range of.byTicket {
		if o.state == offerPending && (o.from == s || o.to == s) {
			gone = append(gone, o)
			delete(of.byTicket, t)
		}
	}
	of.mu.Unlock()
	for _, o := range gone {
		switch {
		case o.from == s && o.toNode != "":
			s.srv.sendOffer(o.toNode, offerMsg{Kind: "cancel", Ticket: o.ticket})
		case o.from == nil:
			s.srv.sendOffer(o.fromNode, offerMsg{Kind: "gone", Ticket: o.ticket})
		case o.from == s:
			if o.to != nil {
				o.to.send(protocol.AppendEvent(nil, "CANCEL", o.ticket, "gone"))
			}
		default:
			o.from.replyf(o.tag, protocol.CodeOffline, "%d went offline before answering", o.toID)
		}
	}
}

// pendingFor lists the offers waiting for user's answer, oldest first, as
// PENDING lines: "chat <id> <nick> <ticket>" and
// "file <id> <nick> <ticket> <count> <bytes> <name>".
func (srv *Server) pendingOffers(s *session) []string {
	of := srv.offers
	of.mu.Lock()
	var mine []*offer
	for _, o := range of.byTicket {
		if o.to == s && o.state == offerPending {
			mine = append(mine, o)
		}
	}
	of.mu.Unlock()
	sort.Slice(mine, func(i, j int) bool { return mine[i].answerBy.Before(mine[j].answerBy) })
	lines := make([]string, len(mine))
	for i, o := range mine {
		nick := o.fromNick
		if o.from != nil {
			nick = o.from.nickname()
		}
		lines[i] = o.purpose + " " + idStr(o.fromID) + " " + nick + " " + o.ticket
		if o.summary != "" {
			lines[i] += " " + o.summary
		}
	}
	return lines
}

// answerMirrorLocked is answerOffer for an offer from a user on another
// node (offers_cluster.go): the offerer's node is told, and the ticket
// made here. Called with of.mu held; unlocks it.
func (of *offers) answerMirrorLocked(s *session, c *protocol.Command, o *offer, accept bool) error {
	purpose := strings.ToLower(c.Args[0])
	if o.to != s || o.purpose != purpose || o.state != offerPending {
		of.mu.Unlock()
		return protocol.Errorf(protocol.CodeSequence, "no %s offer %s waits for your answer", purpose, protocol.Clip(o.ticket, 30))
	}
	key := of.keys[s]
	if accept && key == "" {
		of.mu.Unlock()
		return errNoLinkKey
	}
	if !accept {
		delete(of.byTicket, o.ticket)
		of.mu.Unlock()
		s.srv.sendOffer(o.fromNode, offerMsg{Kind: "refused", Ticket: o.ticket})
		s.replyf(c.Tag, protocol.CodeOK, "refused the %s from %d", purpose, o.fromID)
		return nil
	}
	o.state = offerAccepted
	o.linkBy = time.Now().Add(linkWindow)
	o.keys[sideTo] = key
	o.secrets = [2]string{newTicket(), newTicket()}
	toEps := of.moreEndpoints(s)
	of.mu.Unlock()
	s.srv.sendOffer(o.fromNode, offerMsg{Kind: "accepted", Ticket: o.ticket, Key: key, Remote: s.remote, Eps: toEps,
		LinkBy: o.linkBy.UnixMilli(), Secret: o.secrets[sideFrom]})
	s.replyf(c.Tag, protocol.CodeTicket, "%s %d %s %s %s %s%s", o.ticket, o.fromID, o.fromRemote, protocol.FormatTime(o.linkBy),
		o.keys[sideFrom], o.secrets[sideTo], o.fromEps)
	s.srv.log.Info("offer accepted", "conn", s.id, "user", o.toID, "from", o.fromID, "node", o.fromNode, "purpose", purpose)
	return nil
}

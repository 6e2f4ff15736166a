package serve

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"qchat/modes/serve/receipts"
	"qchat/protocol"
)

// Receipts and typing (PROTOCOL.md section 5, "Receipts and typing"): the
// handlers of READ and TYPING, the settings, and the server's side of the
// marks (modes/serve/receipts owns their merging).
//
// Where a mark comes from:
//
//   - shown: the reader's client acknowledged a private message (ACK, the
//     delivery guarantee's own line: nothing more from the reader). When
//     the sender still waits for its 250, the 250 says it ("delivered
//     ... shown"): the common case, an online reader, costs six bytes.
//     Otherwise (the sender heard "stored" before) a RECEIPT goes to the
//     sender, merged per conversation per --receipt-interval.
//   - read: the reader's client said READ <sender> <msgid>. Sent before
//     the ACK of that message (a client that shows a message where it is
//     read at once), it rides on the 250 too ("delivered ... read");
//     otherwise a RECEIPT, merged likewise.
//
// A mark exists only when both sides have receipts on, and goes to the
// sender like PRESENCE and NUDGE go (the hub's session of the user); to a
// sender who is offline it is kept in memory for its next login.

// Settings bits of a session (session.prefs): its user's own, from the
// profile, kept in step by SET.
const (
	prefNoReceipts uint32 = 1 << iota
	prefNoTyping
)

func prefsOf(noReceipts, noTyping bool) uint32 {
	var p uint32
	if noReceipts {
		p |= prefNoReceipts
	}
	if noTyping {
		p |= prefNoTyping
	}
	return p
}

func (s *session) receiptsOn() bool { return s.prefs.Load()&prefNoReceipts == 0 }
func (s *session) typingOn() bool   { return s.prefs.Load()&prefNoTyping == 0 }

// READ and TYPING have a budget of their own per session, so that they
// cost nothing of the message budget (--msg-rate) while a client sends
// them as qchat does (a READ when a conversation is read, a TYPING at most
// every few seconds while a line is typed). Past it each costs a message
// token: a flood of them is slowed and cut off as one of messages is, and
// a TYPING past it is not relayed.
const (
	noteRate  = 2  // a second
	noteBurst = 20 // at once
)

// noteFree charges a READ or TYPING to the session's budget for them:
// free when it fits, else a message token (pay: it may wait, or close the
// session for flooding, and then ok is false).
func (s *session) noteFree(tag string) (free, ok bool) {
	if s.lim.exempt || s.lim.notes.Allow(time.Now(), 1) {
		return true, true
	}
	return false, s.pay(tag, 1)
}

// Receipt and typing settings of a user who may be offline (the
// directory's copy of the profile).
func (d *directory) settings(id int64) (receipts, typing bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.byID[id]
	if a == nil {
		return false, false
	}
	return !a.profile.NoReceipts, !a.profile.NoTyping
}

// privateTarget resolves the user of a READ or TYPING: a user other than
// oneself (a group has neither: PROTOCOL.md says why).
func (s *session) privateTarget(who, verb string) (*account, error) {
	if strings.HasPrefix(who, "#") {
		return nil, protocol.Errorf(protocol.CodeSyntax, "%s: only for private conversations, not groups", verb)
	}
	a, err := s.target(who)
	if err != nil {
		return nil, err
	}
	if a.id == s.loggedIn() {
		return nil, protocol.Errorf(protocol.CodeSyntax, "%s: not to yourself", verb)
	}
	return a, nil
}

// READ <id|nick> <msgid>
//
// No reply when well formed: the user has read what <id|nick> sent them
// up to <msgid>.
func (s *session) cmdRead(c *protocol.Command) error {
	a, err := s.privateTarget(c.Args[0], "READ")
	if err != nil {
		return err
	}
	id, ok := protocol.ParseID(c.Args[1])
	if !ok {
		return protocol.Errorf(protocol.CodeSyntax, "READ: bad message id %q", protocol.Clip(c.Args[1], 20))
	}
	if _, ok := s.noteFree(c.Tag); !ok || !s.receiptsOn() {
		return nil
	}
	me := s.loggedIn()
	if s.srv.soc.blocked(me, a.id) || s.srv.soc.blocked(a.id, me) {
		return nil
	}
	if s.srv.po.markRead(me, a.id, id) {
		return nil // the sender learns it with the message's 250
	}
	s.srv.noteMarks([]receipts.Mark{{Sender: a.id, Reader: me, Kind: receipts.Read, ID: id}})
	return nil
}

// TYPING <id|nick> on|off
//
// No reply when well formed. Relayed at once to the other user when both
// have typing on, it is online and may see this user's presence, and
// neither blocks the other; never kept.
func (s *session) cmdTyping(c *protocol.Command) error {
	a, err := s.privateTarget(c.Args[0], "TYPING")
	if err != nil {
		return err
	}
	state := strings.ToLower(c.Args[1])
	if state != "on" && state != "off" {
		return protocol.Errorf(protocol.CodeSyntax, "TYPING: on or off, not %q", protocol.Clip(c.Args[1], 20))
	}
	if free, ok := s.noteFree(c.Tag); !free || !ok || !s.typingOn() {
		return nil
	}
	me := s.loggedIn()
	to := s.srv.hub.session(a.id)
	if !s.srv.seesPresence(a.id, me) || s.srv.soc.blocked(a.id, me) || s.srv.soc.blocked(me, a.id) {
		return nil
	}
	line := protocol.AppendEvent(nil, "TYPING", idStr(me), s.nickname(), state)
	switch {
	case to != nil && to.typingOn():
		to.send(line)
	case to == nil && s.srv.onAnotherNode(a.id):
		s.srv.cl.Event(a.id, line) // its node checks its typing setting (clustered.go)
	}
	return nil
}

// setSetting is SET receipts|typing on|off.
func (s *session) setSetting(c *protocol.Command, a *account, field, value string) error {
	v := strings.ToLower(value)
	if v != "on" && v != "off" {
		return protocol.Errorf(protocol.CodeBadValue, "%s: on or off", field)
	}
	p := s.srv.dir.snapshot(a).profile
	if field == "receipts" {
		p.NoReceipts = v == "off"
	} else {
		p.NoTyping = v == "off"
	}
	if err := s.srv.store.SetProfile(context.Background(), a.id, p); err != nil {
		return err
	}
	s.srv.dir.update(a, func(a *account) { a.profile = p })
	s.prefs.Store(prefsOf(p.NoReceipts, p.NoTyping))
	s.replyf(c.Tag, protocol.CodeOK, "%s %s", field, v)
	return nil
}

// onOff is a setting as INFO shows it.
func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// marks is the server's side of the receipts: the coalescer, the marks
// kept for senders who are offline, and the one timer that sends the
// marks held back when their interval is over.
type marks struct {
	co   *receipts.Coalescer
	wait *receipts.Waiting

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// Bounds of the marks kept for offline senders: per sender (its
// conversations with the latest marks), and in all.
const (
	waitingPerSender = 256
	waitingTotal     = 1 << 20
)

func newMarks(every time.Duration) *marks {
	return &marks{co: receipts.NewCoalescer(every), wait: receipts.NewWaiting(waitingPerSender, waitingTotal)}
}

// noteMarks takes marks (from ACKs or READ) and sends those that may go
// now; the others go when their interval is over (flushMarks).
func (srv *Server) noteMarks(ms []receipts.Mark) {
	now := time.Now()
	for _, m := range ms {
		send, wait := srv.marks.co.Note(m, now)
		if send {
			srv.sendMark(m)
		}
		if wait > 0 {
			srv.armMarks(wait)
		}
	}
}

// armMarks has flushMarks run after d. The coalescer asks for it only
// when no run is due: one timer serves every conversation.
func (srv *Server) armMarks(d time.Duration) {
	srv.marks.mu.Lock()
	defer srv.marks.mu.Unlock()
	switch {
	case srv.marks.stopped:
	case srv.marks.timer == nil:
		srv.marks.timer = time.AfterFunc(d, srv.flushMarks)
	default:
		srv.marks.timer.Reset(d)
	}
}

// flushMarks sends the marks whose interval is over (the timer's
// goroutine).
func (srv *Server) flushMarks() {
	due, next := srv.marks.co.Take(time.Now())
	for _, m := range due {
		srv.sendMark(m)
	}
	if next > 0 {
		srv.armMarks(next)
	}
}

// stopMarks stops the timer (shutdown): held marks are not durable.
func (srv *Server) stopMarks() {
	srv.marks.mu.Lock()
	defer srv.marks.mu.Unlock()
	srv.marks.stopped = true
	if srv.marks.timer != nil {
		srv.marks.timer.Stop()
	}
}

// receiptsBetween reports whether a mark may pass between sender and
// reader: both have receipts on, neither blocks the other, and the sender
// may see the reader's presence (friends mode): a mark says the reader
// was there.
func (srv *Server) receiptsBetween(sender, reader int64) bool {
	r1, _ := srv.dir.settings(sender)
	r2, _ := srv.dir.settings(reader)
	return r1 && r2 && !srv.soc.blocked(sender, reader) && !srv.soc.blocked(reader, sender) && srv.seesPresence(sender, reader)
}

// sendMark sends m to its sender, or keeps it for the sender's next login.
func (srv *Server) sendMark(m receipts.Mark) {
	if !srv.receiptsBetween(m.Sender, m.Reader) {
		return
	}
	to := srv.hub.session(m.Sender)
	if to == nil {
		if srv.cl != nil && srv.cl.Event(m.Sender, srv.appendReceipt(nil, m)) {
			return // online on another node (clustered.go)
		}
		srv.marks.wait.Keep(m)
		return
	}
	to.send(srv.appendReceipt(nil, m))
}

// sendWaitingMarks sends s, just logged in, the marks kept for it while
// it was offline, in one write.
func (srv *Server) sendWaitingMarks(s *session) {
	var b []byte
	for _, m := range srv.marks.wait.Take(s.user) {
		if srv.receiptsBetween(m.Sender, m.Reader) {
			b = srv.appendReceipt(b, m)
		}
	}
	if len(b) > 0 {
		s.send(b)
	}
}

// appendReceipt appends the event RECEIPT <reader> <reader_nick> shown|read <msgid>.
func (srv *Server) appendReceipt(dst []byte, m receipts.Mark) []byte {
	return protocol.AppendEvent(dst, "RECEIPT", idStr(m.Reader), srv.dir.nickOf(m.Reader), m.Kind.String(), strconv.FormatInt(m.ID, 10))
}

// How a READ named a message before its ACK (entry.read).
const (
	readRides uint8 = iota + 1 // its sender waits for the 250, which will say "read"
	readNoted                  // a read mark was noted for it: its ACK adds no shown mark
)

func isPrivate(kind string) bool { return kind == "MSG" || kind == "msg" || kind == "" }

// markRead notes READ <sender> <id> from reader on the message id when it
// waits in reader's mailbox for its ACK. rides: its sender will learn it
// from the message's 250 (a client that shows a message where it is read
// at once sends READ, then ACK, in one write), and no mark is needed.
func (po *postOffice) markRead(reader, sender, id int64) (rides bool) {
	mb := po.existing(reader)
	if mb == nil {
		return false
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	e := mb.findLocked(id)
	if e == nil || e.item.Sender != sender || !isPrivate(e.item.Kind) {
		return false
	}
	if e.from != nil && e.fan == nil && !e.from.closed.Load() && e.from.receiptsOn() {
		e.read = readRides
		return true
	}
	e.read = readNoted
	return false
}

// receiptLocked is what the sender of e, a private message that mb's
// session acknowledged just now (mb locked, e not yet answered
// "delivered"), learns of it: the word its 250 carries when it still
// waits for one ("shown", or "read" when READ named it first); else
// marks to note once mb is unlocked, appended to ms. Nothing when either
// side has receipts off.
func (po *postOffice) receiptLocked(mb *mailbox, e *entry, ms []receipts.Mark) (string, []receipts.Mark) {
	if mb.sess == nil || !mb.sess.receiptsOn() || !isPrivate(e.item.Kind) {
		return "", ms
	}
	if from := e.from; from != nil && e.fan == nil && !from.closed.Load() {
		switch {
		case !from.receiptsOn():
			return "", ms
		case e.read == readRides:
			return "read", ms
		}
		return "shown", ms
	}
	// The sender heard "stored" before, or its session is gone.
	m := receipts.Mark{Sender: e.item.Sender, Reader: mb.user, Kind: receipts.Shown, ID: e.item.ID}
	switch e.read {
	case readNoted: // the read mark says it all
		return "", ms
	case readRides: // it missed its ride
		m.Kind = receipts.Read
	}
	return "", append(ms, m)
}

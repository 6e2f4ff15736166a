package serve

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"qchat/modes/serve/presence"
	"qchat/modes/serve/store"
	"qchat/protocol"
)

// Handlers of presence, profiles, friends and groups. Each checks its
// arguments, changes the store and memory (social.go), tells whoever must
// know through a durable notice, and answers.

// presence returns a user's state and the text shown with it: the away
// text when away and it has one, else the profile's status line.
func (srv *Server) presence(a *account) (state, text string) {
	state, text = srv.hub.state(a.id)
	if state == "offline" {
		state, text = srv.remoteState(a.id) // on another node of the cluster
	}
	if text == "" && state != "offline" {
		text = srv.dir.snapshot(a).profile.Status
	}
	return state, text
}

// seesPresence reports whether viewer may know whether user is online:
// oneself always; nobody whom user blocks (a blocked user sees the
// blocker offline everywhere); in LAN mode everyone else, in friends
// mode only a friend.
func (srv *Server) seesPresence(viewer, user int64) bool {
	switch {
	case viewer == user:
		return true
	case srv.cfg.Presence == "friends" && !srv.soc.areFriends(viewer, user):
		return false
	}
	return !srv.soc.anyBlocks() || !srv.soc.blocked(user, viewer)
}

// tellPresenceFlip tells watcher, when online, of user's presence when
// whether it may see it changed (a BLOCK or UNBLOCK): saw is whether it
// could before. A blocked watcher hears "offline", an unblocked one the
// user's state.
func (srv *Server) tellPresenceFlip(user, watcher int64, saw bool) {
	sees := srv.seesPresence(watcher, user)
	if sees == saw {
		return
	}
	to, a := srv.hub.session(watcher), srv.dir.byId(user)
	if to == nil || a == nil {
		return
	}
	state, text := presence.Offline, ""
	if sees {
		state, text = srv.presence(a)
		if state == presence.Offline {
			return // it was offline to watcher, and is
		}
	} else if st, _ := srv.hub.state(user); st == presence.Offline {
		return
	}
	to.send(presence.AppendLine(nil, presence.Change{User: user, Nick: srv.dir.nickOf(user), State: state, Text: text}))
}

// presenceFor is a's presence as viewer may see it: a user whose presence
// viewer may not see looks offline, exactly like one who is.
func (srv *Server) presenceFor(viewer int64, a *account) (state, text string) {
	if !srv.seesPresence(viewer, a.id) {
		return "offline", ""
	}
	return srv.presence(a)
}

// announceSelf re-announces s's user after a change of state or profile
// (announce.go: with the other changes of its --presence-interval).
func (s *session) announceSelf() {
	if user := s.loggedIn(); user != 0 {
		s.srv.notePresence(user)
	}
}

// userLine is "<id> <nick> <state>[ <text>]", as LIST, FRIENDS, MEMBERS and
// FIND show a user to viewer.
func (srv *Server) userLine(viewer int64, a *account) string {
	snap := srv.dir.snapshot(a)
	state, text := srv.presenceFor(viewer, a)
	line := idStr(snap.id) + " " + snap.nick + " " + state
	if text != "" {
		line += " " + text
	}
	return line
}

// target resolves a user argument, or fails with 550.
func (s *session) target(who string) (*account, error) {
	a := s.srv.dir.lookup(who)
	if a == nil {
		return nil, store.ErrNoUser
	}
	return a, nil
}

// notice sends user a durable notice from s's user: what, and a group.
func (s *session) notice(to int64, kind, what string) {
	s.srv.po.notify(to, kind, s.loggedIn(), s.nickname(), what)
}

// AWAY [status]
func (s *session) cmdAway(c *protocol.Command) error {
	text := ""
	if len(c.Args) > 0 {
		text = strings.TrimSpace(c.Args[0])
		if err := checkField(text, maxStatus); err != nil {
			return err
		}
	}
	s.srv.hub.setAway(s.loggedIn(), true, text)
	s.announceSelf()
	s.replyf(c.Tag, protocol.CodeOK, "away")
	return nil
}

// BACK
func (s *session) cmdBack(c *protocol.Command) error {
	s.srv.hub.setAway(s.loggedIn(), false, "")
	s.announceSelf()
	s.replyf(c.Tag, protocol.CodeOK, "back")
	return nil
}

// Profile limits.
const (
	maxStatus  = 128 // characters of a status or away line
	maxAddress = 128 // characters of an address
	maxAge     = 150
)

// checkField checks a free-text profile value: a clean line of at most max
// characters that shows on a terminal as it is.
func checkField(v string, max int) error {
	if utf8.RuneCountInString(v) > max {
		return protocol.Errorf(protocol.CodeTooLong, "at most %d characters", max)
	}
	if !utf8.ValidString(v) || protocol.Escape(v) != v {
		return protocol.Errorf(protocol.CodeBadValue, "control characters are not allowed")
	}
	return nil
}

// SET nick|sex|age|address|status <value>   ("-" clears)
func (s *session) cmdSet(c *protocol.Command) error {
	field, value := strings.ToLower(c.Args[0]), strings.TrimSpace(c.Args[1])
	a := s.srv.dir.byId(s.loggedIn())
	if a == nil {
		return store.ErrNoUser
	}
	ctx := context.Background()
	if field == "receipts" || field == "typing" {
		return s.setSetting(c, a, field, value)
	}
	if field == "nick" {
		if err := protocol.ValidNick(value); err != nil {
			return err
		}
		release, err := s.srv.dir.claim(value, a)
		if err != nil {
			return err
		}
		defer release()
		if err := s.srv.store.SetNick(ctx, a.id, value); err != nil {
			return err
		}
		s.srv.dir.rename(a, value)
		s.mu.Lock()
		s.nick = value
		s.mu.Unlock()
		s.announceSelf()
		s.replyf(c.Tag, protocol.CodeOK, "nick %s", value)
		return nil
	}
	p := s.srv.dir.snapshot(a).profile
	clear := value == "-"
	switch field {
	case "sex":
		switch v := strings.ToLower(value); {
		case clear:
			p.Sex = ""
		case v == "male" || v == "female" || v == "other":
			p.Sex = v
		default:
			return protocol.Errorf(protocol.CodeBadValue, "sex: male, female, other or - (unset)")
		}
	case "age":
		n, err := strconv.Atoi(value)
		switch {
		case clear:
			p.Age = 0
		case err != nil || n < 1 || n > maxAge:
			return protocol.Errorf(protocol.CodeBadValue, "age: a whole number from 1 to %d, or - (unset)", maxAge)
		default:
			p.Age = n
		}
	case "address", "status":
		max := maxAddress
		if field == "status" {
			max = maxStatus
		}
		if clear {
			value = ""
		} else if err := checkField(value, max); err != nil {
			return protocol.Errorf(err.(*protocol.Error).Code, "%s: %s", field, err.(*protocol.Error).Text)
		}
		if field == "status" {
			p.Status = value
		} else {
			p.Address = value
		}
	default:
		return protocol.Errorf(protocol.CodeSyntax, "SET: the fields are nick, sex, age, address, status, receipts and typing")
	}
	if err := s.srv.store.SetProfile(ctx, a.id, p); err != nil {
		return err
	}
	s.srv.dir.update(a, func(a *account) { a.profile = p })
	if field == "status" {
		s.announceSelf()
	}
	if clear {
		value = "-"
	}
	s.replyf(c.Tag, protocol.CodeOK, "%s %s", field, value)
	return nil
}

// PASSWD <old> <new>, each with %20 for a space and %25 for a percent sign.
func (s *session) cmdPasswd(c *protocol.Command) error {
	old, err1 := url.PathUnescape(c.Args[0])
	pw, err2 := url.PathUnescape(c.Args[1])
	if err1 != nil || err2 != nil {
		return protocol.Errorf(protocol.CodeSyntax, "PASSWD: bad %%-escape")
	}
	if err := protocol.ValidPassword(pw); err != nil {
		return err
	}
	a := s.srv.dir.byId(s.loggedIn())
	if a == nil {
		return store.ErrNoUser
	}
	if comparePassword([]byte(s.srv.dir.snapshot(a).pwhash), []byte(old)) != nil {
		s.failures++
		s.loginFailed()
		s.replyf(c.Tag, protocol.CodeLoginFailed, "old password incorrect")
		if s.failures >= maxAuthFailures {
			s.close(reasonAuthFailures, "too many wrong passwords")
		}
		return nil
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), s.srv.cfg.HashCost)
	if err != nil {
		return err
	}
	if err := s.srv.setPassword(a, "", string(hash)); err != nil {
		return err
	}
	// One session per account (the newest takes over), so there is no
	// other session to log out; a login racing this one used the old
	// password before it changed.
	s.srv.log.Info("password changed", "conn", s.id, "user", a.id)
	s.replyf(c.Tag, protocol.CodeOK, "password changed")
	return nil
}

// nudgeLimiter allows one nudge per sender and recipient per interval.
type nudgeLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[[2]int64]time.Time
}

func newNudgeLimiter(every time.Duration) *nudgeLimiter {
	return &nudgeLimiter{every: every, last: make(map[[2]int64]time.Time)}
}

func (n *nudgeLimiter) allow(from, to int64, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [2]int64{from, to}
	if t, ok := n.last[k]; ok && now.Sub(t) < n.every {
		return false
	}
	if len(n.last) > 10000 {
		for k, t := range n.last {
			if now.Sub(t) >= n.every {
				delete(n.last, k)
			}
		}
	}
	n.last[k] = now
	return true
}

// NUDGE <id|nick>
func (s *session) cmdNudge(c *protocol.Command) error {
	a, err := s.target(c.Args[0])
	if err != nil {
		return err
	}
	me := s.loggedIn()
	if a.id == me {
		return protocol.Errorf(protocol.CodeSyntax, "you cannot nudge yourself")
	}
	to := s.srv.hub.session(a.id)
	remote := to == nil && s.srv.onAnotherNode(a.id) // clustered.go
	if to == nil && !remote || !s.srv.seesPresence(me, a.id) {
		return protocol.Errorf(protocol.CodeOffline, "%d is not online", a.id)
	}
	if !s.srv.nudge.allow(me, a.id, time.Now()) {
		return protocol.Errorf(protocol.CodeRateLimit, "nudge %d at most once every %s", a.id, s.srv.cfg.NudgeEvery)
	}
	if !s.srv.soc.blocked(a.id, me) {
		line := protocol.AppendEvent(nil, "NUDGE", idStr(me), s.nickname(), protocol.FormatTime(time.Now()))
		if remote {
			s.srv.cl.Event(a.id, line)
		} else {
			to.send(line)
		}
	}
	s.replyf(c.Tag, protocol.CodeOK, "nudged %d", a.id)
	return nil
}

// maxFound bounds FIND's answer.
const maxFound = 50

// FIND <text>
func (s *session) cmdFind(c *protocol.Command) error {
	found := s.srv.dir.find(strings.TrimSpace(c.Args[0]), maxFound)
	lines := make([]string, len(found))
	for i := range found {
		lines[i] = s.srv.userLine(s.loggedIn(), s.srv.dir.byId(found[i].id))
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" found")
	return nil
}

// ADD <id|nick>
func (s *session) cmdAdd(c *protocol.Command) error {
	a, err := s.target(c.Args[0])
	if err != nil {
		return err
	}
	out, err := s.srv.soc.requestFriend(context.Background(), s.loggedIn(), a.id)
	if err != nil {
		return err
	}
	switch out {
	case friendAlready:
		s.replyf(c.Tag, protocol.CodeOK, "%d is your friend already", a.id)
	case friendMade:
		s.notice(a.id, "NOTICE", "friend-accepted")
		s.replyf(c.Tag, protocol.CodeOK, "%d is now your friend", a.id)
	case friendAsked:
		s.notice(a.id, "REQUEST", "friend")
		fallthrough
	default: // asked before, or dropped by a block: the same answer, nothing sent
		s.replyf(c.Tag, protocol.CodeOK, "friend request sent to %d", a.id)
	}
	return nil
}

// ACCEPT friend <id|nick> | ACCEPT invite <#group>, and REJECT alike.
func (s *session) cmdAnswer(c *protocol.Command) error {
	accept := c.Verb == "ACCEPT"
	ctx := context.Background()
	me := s.loggedIn()
	switch strings.ToLower(c.Args[0]) {
	case "friend":
		a, err := s.target(c.Args[1])
		if err != nil {
			return err
		}
		if err := s.srv.soc.answerFriend(ctx, me, a.id, accept); err != nil {
			return err
		}
		if accept {
			s.notice(a.id, "NOTICE", "friend-accepted")
			s.replyf(c.Tag, protocol.CodeOK, "%d is now your friend", a.id)
		} else {
			s.notice(a.id, "NOTICE", "friend-rejected")
			s.replyf(c.Tag, protocol.CodeOK, "refused %d's friend request", a.id)
		}
	case "chat", "file":
		return s.answerOffer(c, accept)
	case "invite":
		if accept {
			g, inviter, err := s.srv.soc.joinGroup(ctx, me, c.Args[1], true)
			if err != nil {
				return err
			}
			s.notice(inviter, "NOTICE", "invite-accepted "+g.tag())
			s.replyf(c.Tag, protocol.CodeOK, "joined %s", g.tag())
		} else {
			g, inviter, err := s.srv.soc.refuseInvite(ctx, me, c.Args[1])
			if err != nil {
				return err
			}
			s.notice(inviter, "NOTICE", "invite-rejected "+g.tag())
			s.replyf(c.Tag, protocol.CodeOK, "refused the invite to %s", g.tag())
		}
	default:
		return protocol.Errorf(protocol.CodeSyntax, "usage: %[1]s friend <id|nick> | %[1]s invite <#group> | %[1]s chat <ticket> | %[1]s file <ticket>", c.Verb)
	}
	return nil
}

// PENDING
func (s *session) cmdPending(c *protocol.Command) error {
	items := s.srv.soc.pending(s.loggedIn())
	lines := make([]string, len(items))
	for i, p := range items {
		lines[i] = p.kind + " " + idStr(p.from) + " " + s.srv.dir.nickOf(p.from)
		if p.group != "" {
			lines[i] += " " + p.group
		}
	}
	lines = append(lines, s.srv.pendingOffers(s)...)
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" pending")
	return nil
}

// FRIENDS
func (s *session) cmdFriends(c *protocol.Command) error {
	ids := s.srv.soc.friendsOf(s.loggedIn())
	lines := make([]string, 0, len(ids))
	for _, id := range ids {
		if a := s.srv.dir.byId(id); a != nil {
			lines = append(lines, s.srv.userLine(s.loggedIn(), a))
		}
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" friends")
	return nil
}

// REMOVE <id|nick>
func (s *session) cmdRemove(c *protocol.Command) error {
	a, err := s.target(c.Args[0])
	if err != nil {
		return err
	}
	was, err := s.srv.soc.unfriend(context.Background(), s.loggedIn(), a.id)
	if err != nil {
		return err
	}
	if !was {
		return protocol.Errorf(protocol.CodeSequence, "%d is not your friend", a.id)
	}
	s.notice(a.id, "NOTICE", "friend-removed")
	s.replyf(c.Tag, protocol.CodeOK, "%d is no longer your friend", a.id)
	return nil
}

// BLOCK <id|nick> and UNBLOCK <id|nick>
func (s *session) cmdBlock(c *protocol.Command) error {
	a, err := s.target(c.Args[0])
	if err != nil {
		return err
	}
	on := c.Verb == "BLOCK"
	me := s.loggedIn()
	saw := s.srv.seesPresence(a.id, me)
	if err := s.srv.soc.block(context.Background(), me, a.id, on); err != nil {
		return err
	}
	s.srv.tellPresenceFlip(me, a.id, saw)
	if on {
		s.replyf(c.Tag, protocol.CodeOK, "blocked %d", a.id)
	} else {
		s.replyf(c.Tag, protocol.CodeOK, "unblocked %d", a.id)
	}
	return nil
}

// CREATE <#group> [open|invite]
func (s *session) cmdCreate(c *protocol.Command) error {
	mode := "open"
	if len(c.Args) > 1 {
		mode = strings.ToLower(c.Args[1])
	}
	if mode != "open" && mode != "invite" {
		return protocol.Errorf(protocol.CodeSyntax, "CREATE: a group is open or invite (-only)")
	}
	g, err := s.srv.soc.createGroup(context.Background(), s.loggedIn(), c.Args[0], mode == "invite")
	if err != nil {
		return err
	}
	s.replyf(c.Tag, protocol.CodeOK, "created %s %s", g.tag(), mode)
	return nil
}

// JOIN <#group>
func (s *session) cmdJoin(c *protocol.Command) error {
	g, inviter, err := s.srv.soc.joinGroup(context.Background(), s.loggedIn(), c.Args[0], false)
	if err != nil {
		return err
	}
	if inviter != 0 {
		s.notice(inviter, "NOTICE", "invite-accepted "+g.tag())
	}
	s.replyf(c.Tag, protocol.CodeOK, "joined %s", g.tag())
	return nil
}

// INVITE <#group> <id|nick>
func (s *session) cmdInvite(c *protocol.Command) error {
	a, err := s.target(c.Args[1])
	if err != nil {
		return err
	}
	g, out, err := s.srv.soc.invite(context.Background(), s.loggedIn(), c.Args[0], a.id)
	if err != nil {
		return err
	}
	if out == invited {
		s.notice(a.id, "REQUEST", "invite "+g.tag())
	}
	s.replyf(c.Tag, protocol.CodeOK, "invited %d to %s", a.id, g.tag())
	return nil
}

// LEAVE <#group>
func (s *session) cmdLeave(c *protocol.Command) error {
	me := s.loggedIn()
	g, err := s.srv.soc.removeMember(context.Background(), me, c.Args[0], me)
	if err != nil {
		return err
	}
	s.replyf(c.Tag, protocol.CodeOK, "left %s", g.tag())
	return nil
}

// KICK <#group> <id|nick>
func (s *session) cmdKick(c *protocol.Command) error {
	a, err := s.target(c.Args[1])
	if err != nil {
		return err
	}
	g, err := s.srv.soc.removeMember(context.Background(), s.loggedIn(), c.Args[0], a.id)
	if err != nil {
		return err
	}
	if a.id != s.loggedIn() {
		s.notice(a.id, "NOTICE", "kicked "+g.tag())
	}
	s.replyf(c.Tag, protocol.CodeOK, "removed %d from %s", a.id, g.tag())
	return nil
}

// MEMBERS <#group>: lines "<id> <nick> <state> owner|member".
func (s *session) cmdMembers(c *protocol.Command) error {
	g, ids, err := s.srv.soc.members(s.loggedIn(), c.Args[0])
	if err != nil {
		return err
	}
	owner := s.srv.soc.ownerOf(g)
	lines := make([]string, 0, len(ids))
	for _, id := range ids {
		a := s.srv.dir.byId(id)
		if a == nil {
			continue
		}
		state, _ := s.srv.presenceFor(s.loggedIn(), a)
		role := "member"
		if id == owner {
			role = "owner"
		}
		lines = append(lines, idStr(id)+" "+s.srv.dir.snapshot(a).nick+" "+state+" "+role)
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" members of "+g.tag())
	return nil
}

// GROUPS
func (s *session) cmdGroups(c *protocol.Command) error {
	me := s.loggedIn()
	gs := s.srv.soc.groupsOf(me)
	lines := make([]string, len(gs))
	for i, g := range gs {
		mode := "open"
		if g.invite {
			mode = "invite"
		}
		lines[i] = g.tag() + " " + strconv.Itoa(len(g.members)) + " " + mode
		if g.owner == me {
			lines[i] += " owner"
		}
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" groups")
	return nil
}

// maxHeldCopies bounds the group copies a session holds back (see msgGroup).
const maxHeldCopies = 4096

// msgGroup handles MSG #group text: every member but the sender (and
// those who block the sender) gets it, online at once, offline on login.
//
// "At once" has one exception, for a sender that posts faster than the
// server sends: while the sender's next line is already here, the copies
// are held back (queued in the members' mailboxes, not yet pushed) for up
// to maxHeldCopies copies, so that a burst of posts to a group reaches
// each member in one write rather than one write per post, and the
// members acknowledge them together. The read loop releases them before
// it waits for input or runs anything but MSG and ACK; anything else that
// pumps a member's mailbox sends them too, in id order.
func (s *session) msgGroup(c *protocol.Command) error {
	g, to, err := s.srv.soc.recipients(s.loggedIn(), c.Args[0])
	if err != nil {
		return err
	}
	if c.Resend {
		s.releaseHeld() // copies posted again come after those held
		if done, err := s.srv.po.resendGroup(s, c, g.tag(), to); done {
			return err
		}
	}
	if !s.pay(c.Tag, len(to)-1) { // a post costs a token per copy; dispatch took one
		return nil
	}
	boxes, err := s.srv.po.postGroupID(s, c.Tag, g.tag(), to, c.Args[1], c.ClientID)
	if err != nil {
		return err
	}
	if !slices.Equal(boxes, s.held) {
		s.releaseHeld()
		s.held = boxes
	}
	if s.heldCopies += len(boxes); s.heldCopies >= maxHeldCopies {
		s.releaseHeld()
	}
	return nil
}

// releaseHeld sends the group copies msgGroup held back.
func (s *session) releaseHeld() {
	if s.held != nil {
		s.srv.po.pumpAll(s.held)
	}
	s.held, s.heldCopies = nil, 0
}

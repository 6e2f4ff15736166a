package serve

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/protocol"
)

// handler runs one verb on the session's read loop. It answers through the
// session, or returns an error that reply maps to the reply the client sees.
type handler struct {
	run      func(s *session, c *protocol.Command) error
	preLogin bool // usable before login
}

// handlers holds every verb of protocol.Commands (a test checks it).
var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"REG":   {run: (*session).cmdReg, preLogin: true},
		"USER":  {run: (*session).cmdUser, preLogin: true},
		"PASS":  {run: (*session).cmdPass, preLogin: true},
		"PING":  {run: (*session).cmdPing, preLogin: true},
		"PONG":  {run: (*session).cmdPong, preLogin: true},
		"HELP":  {run: (*session).cmdHelp, preLogin: true},
		"QUIT":  {run: (*session).cmdQuit, preLogin: true},
		"LIST":  {run: (*session).cmdList},
		"INFO":  {run: (*session).cmdInfo},
		"MSG":   {run: (*session).cmdMsg},
		"ACK":   {run: (*session).cmdAck},
		"CHAT":  {run: (*session).cmdChat},
		"FILE":  {run: (*session).cmdFile},
		"RELAY": {run: (*session).cmdRelay, preLogin: true},

		"AWAY":    {run: (*session).cmdAway},
		"BACK":    {run: (*session).cmdBack},
		"SET":     {run: (*session).cmdSet},
		"PASSWD":  {run: (*session).cmdPasswd},
		"NUDGE":   {run: (*session).cmdNudge},
		"FIND":    {run: (*session).cmdFind},
		"ADD":     {run: (*session).cmdAdd},
		"ACCEPT":  {run: (*session).cmdAnswer},
		"REJECT":  {run: (*session).cmdAnswer},
		"PENDING": {run: (*session).cmdPending},
		"FRIENDS": {run: (*session).cmdFriends},
		"REMOVE":  {run: (*session).cmdRemove},
		"BLOCK":   {run: (*session).cmdBlock},
		"UNBLOCK": {run: (*session).cmdBlock},
		"CREATE":  {run: (*session).cmdCreate},
		"JOIN":    {run: (*session).cmdJoin},
		"INVITE":  {run: (*session).cmdInvite},
		"LEAVE":   {run: (*session).cmdLeave},
		"KICK":    {run: (*session).cmdKick},
		"MEMBERS": {run: (*session).cmdMembers},
		"GROUPS":  {run: (*session).cmdGroups},
	}
}

// maxPreLogin bounds the commands a connection may send before logging in.
const maxPreLogin = 20

// maxAuthFailures is how many wrong passwords close the connection.
const maxAuthFailures = 3

func (s *session) dispatch(c *protocol.Command) {
	h, ok := handlers[c.Verb]
	if !ok {
		s.replyf(c.Tag, protocol.CodeUnknown, "unknown command %s", c.Verb)
		return
	}
	if s.loggedIn() == 0 {
		s.preLogin++
		if s.preLogin > maxPreLogin {
			s.replyf(c.Tag, protocol.CodeNeedLogin, "too many commands before login")
			s.close(reasonPreLogin, "too many commands before login")
			return
		}
		if !h.preLogin {
			s.replyf(c.Tag, protocol.CodeNeedLogin, "log in first (USER, PASS) or register (REG)")
			return
		}
	}
	if err := h.run(s, c); err != nil {
		s.replyErr(c.Tag, err)
	}
}

// replyErr is the one place where an error becomes the reply a client sees.
func (s *session) replyErr(tag string, err error) {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		s.replyf(tag, pe.Code, "%s", pe.Text)
	case errors.Is(err, ErrNoUser):
		s.replyf(tag, protocol.CodeNoSuchUser, "no such user")
	case errors.Is(err, ErrNickTaken):
		s.replyf(tag, protocol.CodeNameTaken, "nickname already taken")
	default:
		s.srv.log.Error("command failed", "conn", s.id, "user", s.loggedIn(), "err", err)
		s.replyf(tag, protocol.CodeLocalError, "server error; nothing was done")
	}
}

// REG <nick> <password>
func (s *session) cmdReg(c *protocol.Command) error {
	nick, pw := c.Args[0], c.Args[1]
	if err := protocol.ValidNick(nick); err != nil {
		return err
	}
	if err := protocol.ValidPassword(pw); err != nil {
		return err
	}
	if s.srv.dir.lookup(nick) != nil {
		return ErrNickTaken
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), s.srv.cfg.HashCost)
	if err != nil {
		return err
	}
	id, err := s.srv.store.CreateUser(context.Background(), nick, string(hash))
	if err != nil {
		return err
	}
	s.srv.dir.add(&account{id: id, nick: nick, pwhash: string(hash), created: time.Now()})
	s.srv.log.Info("registered", "conn", s.id, "user", id, "nick", nick)
	s.replyf(c.Tag, protocol.CodeRegistered, "%d %s", id, nick)
	return nil
}

// USER <id|nick>
//
// The answer is the same whether or not the user exists.
func (s *session) cmdUser(c *protocol.Command) error {
	if s.loggedIn() != 0 {
		return protocol.Errorf(protocol.CodeSequence, "already logged in")
	}
	s.pending = s.srv.dir.lookup(c.Args[0])
	s.userSent = true
	s.replyf(c.Tag, protocol.CodePassword, "password required")
	return nil
}

// dummyHash is compared against when USER named nobody, so that a wrong
// user costs the same time as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("qchat dummy password"), bcrypt.MinCost)

// PASS <password>
func (s *session) cmdPass(c *protocol.Command) error {
	if s.loggedIn() != 0 {
		return protocol.Errorf(protocol.CodeSequence, "already logged in")
	}
	if !s.userSent {
		return protocol.Errorf(protocol.CodeSequence, "send USER first")
	}
	a := s.pending
	s.pending, s.userSent = nil, false
	hash := dummyHash
	var snap account
	if a != nil {
		snap = s.srv.dir.snapshot(a)
		hash = []byte(snap.pwhash)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(c.Args[0])) != nil || a == nil {
		s.failures++
		s.srv.log.Info("login failed", "conn", s.id, "remote", s.remote, "failures", s.failures)
		s.replyf(c.Tag, protocol.CodeLoginFailed, "login incorrect")
		if s.failures >= maxAuthFailures {
			s.close(reasonAuthFailures, "too many failed logins")
		}
		return nil
	}
	s.mu.Lock()
	s.user, s.nick = snap.id, snap.nick
	s.mu.Unlock()
	s.replyf(c.Tag, protocol.CodeLoggedIn, "%d %s", snap.id, snap.nick)
	s.srv.log.Info("logged in", "conn", s.id, "remote", s.remote, "user", snap.id)
	if old := s.srv.hub.login(s); old != nil {
		old.close(reasonTakeover, "logged in from another place")
	} else {
		s.srv.announce(snap.id, snap.nick, "online", snap.profile.Status)
	}
	s.srv.po.attach(context.Background(), s)
	return nil
}

// LIST
func (s *session) cmdList(c *protocol.Command) error {
	online := s.srv.hub.list()
	lines := make([]string, 0, len(online))
	friendsOnly := s.srv.cfg.Presence == "friends"
	me := s.loggedIn()
	for _, o := range online {
		if friendsOnly && o.user != me && !s.srv.soc.areFriends(me, o.user) {
			continue
		}
		if a := s.srv.dir.byId(o.user); a != nil {
			lines = append(lines, s.srv.userLine(a))
		}
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, strconv.Itoa(len(lines))+" online")
	return nil
}

// INFO <id|nick>
func (s *session) cmdInfo(c *protocol.Command) error {
	a := s.srv.dir.lookup(c.Args[0])
	if a == nil {
		return ErrNoUser
	}
	snap := s.srv.dir.snapshot(a)
	state, text := s.srv.presence(a)
	lines := []string{"id " + idStr(snap.id), "nick " + snap.nick, "state " + state}
	add := func(key, value string) {
		if value != "" {
			lines = append(lines, key+" "+value)
		}
	}
	if state == "away" {
		add("away", text)
	}
	add("status", snap.profile.Status)
	add("sex", snap.profile.Sex)
	if snap.profile.Age > 0 {
		add("age", strconv.Itoa(snap.profile.Age))
	}
	add("address", snap.profile.Address)
	add("registered", snap.created.UTC().Format("2006-01-02"))
	if me := s.loggedIn(); me != snap.id && s.srv.soc.areFriends(me, snap.id) {
		add("friend", "yes")
	}
	s.replyLines(c.Tag, protocol.CodeInfo, lines, "end")
	return nil
}

// MSG <id|nick> <text>
//
// Answered with 250 <msgid> delivered|stored once the message is safe.
func (s *session) cmdMsg(c *protocol.Command) error {
	if err := protocol.CheckText(c.Args[1], protocol.MaxText); err != nil {
		return err
	}
	if strings.HasPrefix(c.Args[0], "#") {
		return s.msgGroup(c)
	}
	a := s.srv.dir.lookup(c.Args[0])
	if a == nil {
		return ErrNoUser
	}
	if s.srv.soc.blocked(a.id, s.loggedIn()) {
		// Dropped without telling: the answer looks like any other.
		s.srv.po.pretendStored(s, c.Tag, a.id)
		return nil
	}
	return s.srv.po.post(s, c.Tag, a.id, c.Args[1])
}

// maxAckIDs bounds the ids in one ACK.
const maxAckIDs = 1024

// ACK <msgid>[,<msgid>...]
//
// No reply when well formed.
func (s *session) cmdAck(c *protocol.Command) error {
	parts := strings.Split(c.Args[0], ",")
	if len(parts) > maxAckIDs {
		return protocol.Errorf(protocol.CodeSyntax, "at most %d ids per ACK", maxAckIDs)
	}
	ids := make([]int64, 0, len(parts))
	for _, p := range parts {
		id, ok := protocol.ParseID(p)
		if !ok {
			return protocol.Errorf(protocol.CodeSyntax, "ACK: bad message id %q", protocol.Clip(p, 20))
		}
		ids = append(ids, id)
	}
	s.srv.po.ack(s.loggedIn(), ids)
	return nil
}

// PING [token]
func (s *session) cmdPing(c *protocol.Command) error {
	tok := ""
	if len(c.Args) > 0 {
		tok = " " + c.Args[0]
	}
	s.replyf(c.Tag, protocol.CodeOK, "pong%s", tok)
	return nil
}

// PONG <token>: the read loop already noted that the client is alive.
func (s *session) cmdPong(c *protocol.Command) error { return nil }

// HELP
func (s *session) cmdHelp(c *protocol.Command) error {
	var lines []string
	for _, syn := range protocol.Commands {
		lines = append(lines, strings.TrimSpace(syn.Name+" "+syn.Usage)+" -- "+syn.Help)
	}
	s.replyLines(c.Tag, protocol.CodeHelp, lines, "end")
	return nil
}

// QUIT [reason]
func (s *session) cmdQuit(c *protocol.Command) error {
	s.replyf(c.Tag, protocol.CodeBye, "bye")
	s.close(reasonQuit, "")
	return nil
}

package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/modes/serve/store"
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
		"REG":     {run: (*session).cmdReg, preLogin: true},
		"USER":    {run: (*session).cmdUser, preLogin: true},
		"PASS":    {run: (*session).cmdPass, preLogin: true},
		"PING":    {run: (*session).cmdPing, preLogin: true},
		"PONG":    {run: (*session).cmdPong, preLogin: true},
		"HELP":    {run: (*session).cmdHelp, preLogin: true},
		"QUIT":    {run: (*session).cmdQuit, preLogin: true},
		"LIST":    {run: (*session).cmdList},
		"INFO":    {run: (*session).cmdInfo},
		"MSG":     {run: (*session).cmdMsg},
		"ACK":     {run: (*session).cmdAck},
		"READ":    {run: (*session).cmdRead},
		"HISTORY": {run: (*session).cmdHistory},
		"CHAT":    {run: (*session).cmdChat},
		"FILE":    {run: (*session).cmdFile},
		"RELAY":   {run: (*session).cmdRelay, preLogin: true},
		"PUT":     {run: (*session).cmdPut},
		"GET":     {run: (*session).cmdGet},
		"DROP":    {run: (*session).cmdDrop},
		"FILES":   {run: (*session).cmdFiles},

		"STARTTLS":  {run: (*session).cmdStartTLS, preLogin: true},
		"LINKKEY":   {run: (*session).cmdLinkKey},
		"ENDPOINTS": {run: (*session).cmdEndpoints},
		"RESUME":    {run: (*session).cmdResume, preLogin: true},
		"TOKEN":     {run: (*session).cmdToken},

		"AWAY":    {run: (*session).cmdAway},
		"BACK":    {run: (*session).cmdBack},
		"SET":     {run: (*session).cmdSet},
		"PASSWD":  {run: (*session).cmdPasswd},
		"NUDGE":   {run: (*session).cmdNudge},
		"TYPING":  {run: (*session).cmdTyping},
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
	if err := s.checkEncryption(c.Verb); err != nil {
		s.replyErr(c.Tag, err)
		return
	}
	if !s.paced(c) {
		return
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
	case errors.Is(err, store.ErrNoUser):
		s.replyf(tag, protocol.CodeNoSuchUser, "no such user")
	case errors.Is(err, store.ErrNickTaken):
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
	release, err := s.srv.dir.claim(nick, nil)
	if err != nil {
		return err
	}
	defer release()
	if !s.regAllowed(c.Tag) {
		return nil
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
	s.lim.account = loginKey(s.pending, c.Args[0])
	s.userSent = true
	s.replyf(c.Tag, protocol.CodePassword, "password required")
	return nil
}

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
	if !s.loginAllowed(c.Tag, true) {
		return nil
	}
	hash := s.srv.lim.dummyHash // an unknown user costs the same work as a wrong password
	var snap account
	if a != nil {
		snap = s.srv.dir.snapshot(a)
		hash = []byte(snap.pwhash)
	}
	if comparePassword(hash, []byte(c.Args[0])) != nil || a == nil {
		s.failures++
		s.loginFailed()
		s.srv.log.Info("login failed", "conn", s.id, "remote", s.remote, "failures", s.failures)
		s.replyf(c.Tag, protocol.CodeLoginFailed, "login incorrect")
		if s.failures >= maxAuthFailures {
			s.close(reasonAuthFailures, "too many failed logins")
		}
		return nil
	}
	s.rehash(a, &snap, c.Args[0])
	s.loginAs(c.Tag, snap, "password")
	return nil
}

// loginAs logs the session in as the account of snap, whose password or
// resumption token was just checked (how): 230, then it is online.
func (s *session) loginAs(tag string, snap account, how string) {
	s.mu.Lock()
	s.user, s.nick = snap.id, snap.nick
	s.mu.Unlock()
	s.in.Store(true)
	s.prefs.Store(prefsOf(snap.profile.NoReceipts, snap.profile.NoTyping))
	s.loginSucceeded()
	if s.srv.cl != nil {
		// Online on another node: that session ends and stores what it
		// held before this one reads the inbox (clustered.go).
		if err := s.srv.cl.Takeover(snap.id); err != nil {
			s.srv.log.Warn("takeover", "user", snap.id, "err", err)
		}
		s.srv.idsAbove(snap.id)
	}
	// Online before the 230: a client that read it is online for everyone.
	old := s.srv.hub.login(s)
	if old != nil {
		old.close(reasonTakeover, "logged in from another place")
	}
	s.replyf(tag, protocol.CodeLoggedIn, "%d %s", snap.id, snap.nick)
	s.srv.log.Info("logged in", "conn", s.id, "remote", s.remote, "user", snap.id, "with", how)
	if old == nil {
		s.srv.notePresence(snap.id)
	}
	s.srv.po.attach(context.Background(), s)
	s.srv.sendWaitingMarks(s)
	s.srv.sendOffline(s)
}

// LIST [<version>]
//
// Without a version, or with one the server no longer knows: everyone
// online (friends only in friends mode), then "210 <n> online <version>".
// With a version (of a PRESENCES event, or of an earlier LIST): who
// changed since, offline ones too, then "210 <n> changed <version>".
func (s *session) cmdList(c *protocol.Command) error {
	me := s.loggedIn()
	if len(c.Args) == 1 {
		since, err := strconv.ParseUint(c.Args[0], 10, 64)
		if err != nil {
			return protocol.Errorf(protocol.CodeSyntax, "LIST: a version is a number")
		}
		if users, version, ok := s.srv.pres.log.Since(since); ok {
			slices.Sort(users)
			lines := make([]string, 0, len(users))
			for _, u := range users {
				if a := s.srv.dir.byId(u); a != nil && s.srv.seesPresence(me, u) {
					lines = append(lines, s.srv.userLine(me, a))
				}
			}
			s.replyLines(c.Tag, protocol.CodeList, lines, fmt.Sprintf("%d changed %d", len(lines), version))
			return nil
		}
	}
	version := s.srv.pres.log.Version() // before the list: changes after it come again, none are missed
	online := s.srv.onlineList()
	lines := make([]string, 0, len(online))
	for _, o := range online {
		if !s.srv.seesPresence(me, o.user) {
			continue
		}
		if a := s.srv.dir.byId(o.user); a != nil {
			lines = append(lines, s.srv.userLine(me, a))
		}
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, fmt.Sprintf("%d online %d", len(lines), version))
	return nil
}

// INFO <id|nick>
func (s *session) cmdInfo(c *protocol.Command) error {
	a := s.srv.dir.lookup(c.Args[0])
	if a == nil {
		return store.ErrNoUser
	}
	snap := s.srv.dir.snapshot(a)
	state, text := s.srv.presenceFor(s.loggedIn(), a)
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
	} else if me == snap.id { // one's own settings, shown to nobody else
		add("receipts", onOff(!snap.profile.NoReceipts))
		add("typing", onOff(!snap.profile.NoTyping))
	}
	s.replyLines(c.Tag, protocol.CodeInfo, lines, "end")
	return nil
}

// MSG [id=<cid>|resend=<cid>] <id|nick> <text>
//
// Answered with 250 <msgid> delivered|stored once the message is safe; a
// resend of a message already taken gets that message's answer
// (resend.go).
func (s *session) cmdMsg(c *protocol.Command) error {
	if err := protocol.CheckText(c.Args[1], protocol.MaxText); err != nil {
		return err
	}
	if strings.HasPrefix(c.Args[0], "#") {
		return s.msgGroup(c)
	}
	a := s.srv.dir.lookup(c.Args[0])
	if a == nil {
		return store.ErrNoUser
	}
	blocked := s.srv.soc.blocked(a.id, s.loggedIn())
	if c.Resend {
		if done, err := s.srv.po.resendPrivate(s, c, a.id, blocked); done {
			return err
		}
	}
	if blocked {
		// Dropped without telling: the answer looks like any other.
		s.srv.po.pretendStored(s, c.Tag, a.id, c.ClientID)
		return nil
	}
	return s.srv.po.postID(s, c.Tag, a.id, c.Args[1], c.ClientID)
}

// maxAckIDs bounds the ids in one ACK.
const maxAckIDs = 1024

// ACK <msgid>[,<msgid>...] | ACK ..<msgid>
//
// No reply when well formed. ..<msgid> acknowledges every durable event
// sent on this connection with an id up to msgid (cumulative, as TCP and
// XEP-0198 acknowledge). Parsed in place: no allocation per ACK.
func (s *session) cmdAck(c *protocol.Command) error {
	arg := c.Args[0]
	if rest, ok := strings.CutPrefix(arg, ".."); ok {
		id, ok := protocol.ParseID(rest)
		if !ok {
			return protocol.Errorf(protocol.CodeSyntax, "ACK: bad message id %q", protocol.Clip(rest, 20))
		}
		s.srv.po.ackUpTo(s.loggedIn(), s, id)
		return nil
	}
	ids := s.ackIDs[:0]
	for arg != "" {
		p, rest, _ := strings.Cut(arg, ",")
		arg = rest
		if len(ids) == maxAckIDs {
			return protocol.Errorf(protocol.CodeSyntax, "at most %d ids per ACK", maxAckIDs)
		}
		id, ok := protocol.ParseID(p)
		if !ok {
			return protocol.Errorf(protocol.CodeSyntax, "ACK: bad message id %q", protocol.Clip(p, 20))
		}
		ids = append(ids, id)
	}
	if strings.HasSuffix(c.Args[0], ",") {
		return protocol.Errorf(protocol.CodeSyntax, "ACK: bad message id %q", "")
	}
	s.srv.po.ack(s.loggedIn(), ids)
	if cap(ids) <= 64 { // kept for the next ACK; a long list is not kept by an idle session
		s.ackIDs = ids
	}
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

package chat

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"qchat/modes/client"
	"qchat/protocol"
)

// command is one slash command. The table below is the only list of them:
// it drives parsing, arity checks, /help and completion.
type command struct {
	name     string
	args     string // synopsis for /help
	help     string
	min, max int  // words after the name; with rest, the last one takes the rest of the line
	rest     bool // the last argument is free text
	login    bool // needs a logged-in session
	userArg  int  // 1-based position of a user argument, for completion (0: none)
	run      func(a *app, ctx context.Context, args []string) error
}

var commands []*command

func init() {
	commands = []*command{
		{name: "/register", args: "NICK", help: "create an account (and log in)", min: 1, max: 1, run: (*app).cmdRegister},
		{name: "/login", args: "ID", help: "log in as ID (or nickname)", min: 1, max: 1, userArg: 1, run: (*app).cmdLogin},
		{name: "/list", help: "who is online", login: true, run: (*app).cmdList},
		{name: "/who", args: "ID", help: "a user's public profile", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdWho},
		{name: "/msg", args: "ID TEXT", help: "send a message (a line without / goes to the current conversation)", min: 2, max: 2, rest: true, login: true, userArg: 1, run: (*app).cmdMsg},
		{name: "/chat", args: "ID", help: "ask ID for a direct chat (peer to peer: the server does not see it)", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdChat},
		{name: "/close", args: "ID", help: "end the direct chat with ID", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdClose},
		{name: "/send", args: "ID PATH...", help: "offer files and folders to ID; sent peer to peer once accepted, resumed if cut", min: 2, max: 2, rest: true, login: true, userArg: 1, run: (*app).cmdSend},
		{name: "/history", args: "[ID|#GROUP] [N]", help: "the last N (20) messages with ID or in a group (default: current conversation)", max: 2, login: true, userArg: 1, run: (*app).cmdHistory},
		{name: "/create", args: "NAME [open|invite]", help: "create a group that you own (open: anyone may join)", min: 1, max: 2, login: true, run: (*app).cmdCreate},
		{name: "/join", args: "NAME", help: "join an open group", min: 1, max: 1, login: true, run: (*app).cmdJoin},
		{name: "/invite", args: "NAME ID", help: "invite a user into a group", min: 2, max: 2, login: true, userArg: 2, run: (*app).cmdInvite},
		{name: "/leave", args: "NAME", help: "leave a group", min: 1, max: 1, login: true, run: (*app).cmdLeave},
		{name: "/members", args: "NAME", help: "a group's members and who is online", min: 1, max: 1, login: true, run: (*app).cmdMembers},
		{name: "/groups", help: "the groups you are in", login: true, run: (*app).cmdGroups},
		{name: "/kick", args: "NAME ID", help: "remove a member from your group", min: 2, max: 2, login: true, userArg: 2, run: (*app).cmdKick},
		{name: "/find", args: "TEXT", help: "search users by nickname or id", min: 1, max: 1, rest: true, login: true, run: (*app).cmdFind},
		{name: "/add", args: "ID", help: "ask a user to be your friend", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdAdd},
		{name: "/accept", args: "ID [#GROUP|chat|file]", help: "accept what ID asked: a friend request, group invite, direct chat or files", min: 1, max: 2, login: true, userArg: 1, run: (*app).cmdAccept},
		{name: "/reject", args: "ID [#GROUP|chat|file]", help: "refuse what ID asked", min: 1, max: 2, login: true, userArg: 1, run: (*app).cmdReject},
		{name: "/pending", help: "requests waiting for your answer", login: true, run: (*app).cmdPending},
		{name: "/friends", help: "your friends, who is online and their status", login: true, run: (*app).cmdFriends},
		{name: "/remove", args: "ID", help: "end a friendship", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdRemove},
		{name: "/block", args: "ID", help: "drop everything ID sends you, without telling them", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdBlock},
		{name: "/unblock", args: "ID", help: "stop blocking ID", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdUnblock},
		{name: "/profile", args: "[set FIELD VALUE]", help: "show your profile, or set nick, sex, age, address or status (- clears)", max: 3, rest: true, login: true, run: (*app).cmdProfile},
		{name: "/passwd", help: "change your password (asks the old one and the new one twice)", login: true, run: (*app).cmdPasswd},
		{name: "/nudge", args: "ID", help: "shake an online user's window", min: 1, max: 1, login: true, userArg: 1, run: (*app).cmdNudge},
		{name: "/away", args: "[TEXT]", help: "mark yourself away", max: 1, rest: true, login: true, run: (*app).cmdAway},
		{name: "/back", help: "back from away", login: true, run: (*app).cmdBack},
		{name: "/wait", args: "REGEXP", help: "scripts: wait until an event line (as printed) matches REGEXP, or fail after --timeout", min: 1, max: 1, rest: true, run: (*app).cmdWait},
		{name: "/help", help: "this list", run: (*app).cmdHelp},
		{name: "/quit", help: "log out and leave", run: (*app).cmdQuit},
	}
}

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// errUsage is a command typed wrong; the text says how to type it.
type errUsage struct{ c *command }

func (e errUsage) Error() string { return "usage: " + strings.TrimSpace(e.c.name+" "+e.c.args) }

// exec runs one input line: a slash command, or text for the current
// conversation.
func (a *app) exec(ctx context.Context, line string) error {
	trimmed := strings.TrimLeft(line, " ")
	if !strings.HasPrefix(trimmed, "/") || strings.HasPrefix(trimmed, "//") {
		text := strings.TrimPrefix(trimmed, "/") // "//x" sends "/x"
		a.mu.Lock()
		cur := a.cur
		a.mu.Unlock()
		if cur == "" {
			return errors.New("no current conversation: start one with /msg ID TEXT")
		}
		return a.cmdMsg(ctx, []string{cur, text})
	}
	name, rest, _ := strings.Cut(trimmed, " ")
	c := lookupCommand(strings.ToLower(name))
	if c == nil {
		return fmt.Errorf("unknown command %s (try /help)", protocol.Clip(name, 20))
	}
	args := splitArgs(rest, c)
	if len(args) < c.min || len(args) > c.max {
		return errUsage{c}
	}
	if c.login && a.cl.Me().ID == 0 {
		return errors.New("log in first: /login ID or /register NICK")
	}
	return c.run(a, ctx, args)
}

// splitArgs splits words; with rest, the last argument keeps its spaces.
func splitArgs(s string, c *command) []string {
	var args []string
	s = strings.TrimLeft(s, " ")
	for s != "" {
		if c.rest && len(args) == c.max-1 {
			return append(args, s)
		}
		w, r, _ := strings.Cut(s, " ")
		args = append(args, w)
		s = strings.TrimLeft(r, " ")
	}
	return args
}

type (
	registeredRecord struct {
		Type string `json:"type"` // "registered"
		ID   int64  `json:"id"`
		Nick string `json:"nick"`
	}
	loginRecord struct {
		Type string `json:"type"` // "login"
		ID   int64  `json:"id"`
		Nick string `json:"nick"`
	}
	listRecord struct {
		Type   string           `json:"type"` // "list"
		Online []PresenceRecord `json:"online"`
	}
	PresenceRecord = client.PresenceRecord
	profileRecord  struct {
		Type    string            `json:"type"` // "profile"
		Profile map[string]string `json:"profile"`
	}
	sentRecord struct {
		Type   string `json:"type"` // "sent"
		ID     int64  `json:"id"`
		To     int64  `json:"to,omitempty"`
		Group  string `json:"group,omitempty"`
		Status string `json:"status"`
		Time   string `json:"time"`
	}
	historyRecord struct {
		Type         string `json:"type"` // "history"
		Conversation string `json:"conversation"`
		ID           int64  `json:"id"`
		Direction    string `json:"direction"` // "in" or "out"
		From         int64  `json:"from"`
		FromNick     string `json:"from_nick"`
		Text         string `json:"text"`
		Time         string `json:"time"`
	}
	helpRecord struct {
		Type     string     `json:"type"` // "help"
		Commands [][]string `json:"commands"`
	}
)

// /register NICK
func (a *app) cmdRegister(ctx context.Context, args []string) error {
	if a.cl.Me().ID != 0 {
		return errors.New("already logged in")
	}
	pw, err := a.newPassword()
	if err != nil {
		return err
	}
	u, err := a.cl.Register(ctx, args[0], pw)
	if err != nil {
		return err
	}
	a.out.Emit(registeredRecord{"registered", u.ID, u.Nick}, fmt.Sprintf("registered %d %s", u.ID, protocol.Escape(u.Nick)))
	a.cfg.Password = pw
	return a.login(ctx, strconv.FormatInt(u.ID, 10), nil)
}

// newPassword is the password for a new account: the configured one, or
// asked twice on the terminal.
func (a *app) newPassword() (string, error) {
	if a.cfg.Password != "" || a.cfg.PasswordFile != "" || a.term == nil {
		return a.password("new password: ", nil)
	}
	p1, err := a.term.askPassword("new password: ")
	if err != nil {
		return "", err
	}
	p2, err := a.term.askPassword("again: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("the two passwords differ")
	}
	return p1, nil
}

// /login ID
func (a *app) cmdLogin(ctx context.Context, args []string) error {
	if a.cl.Me().ID != 0 {
		return errors.New("already logged in")
	}
	var ask func(string) (string, error)
	if a.term != nil {
		ask = a.term.askPassword
	}
	if err := a.login(ctx, args[0], ask); err != nil {
		return err
	}
	me := a.cl.Me()
	a.out.Emit(loginRecord{"login", me.ID, me.Nick}, fmt.Sprintf("logged in as %d %s", me.ID, protocol.Escape(me.Nick)))
	return nil
}

// /list
func (a *app) cmdList(ctx context.Context, args []string) error {
	online, err := a.cl.List(ctx)
	if err != nil {
		return err
	}
	rec := listRecord{Type: "list", Online: []PresenceRecord{}}
	var plain []string
	for _, p := range online {
		a.remember(p.ID, p.Nick)
		rec.Online = append(rec.Online, PresenceRecord{Type: "presence", ID: p.ID, Nick: p.Nick, State: p.State, Status: p.Status})
		l := fmt.Sprintf("%d %s %s", p.ID, protocol.Escape(p.Nick), protocol.Escape(p.State))
		if p.Status != "" {
			l += " " + protocol.Escape(p.Status)
		}
		plain = append(plain, l)
	}
	plain = append(plain, fmt.Sprintf("%d online", len(online)))
	a.out.Emit(rec, strings.Join(plain, "\n"))
	return nil
}

// /who ID
func (a *app) cmdWho(ctx context.Context, args []string) error {
	info, err := a.cl.Info(ctx, args[0])
	if err != nil {
		return err
	}
	rec := profileRecord{Type: "profile", Profile: make(map[string]string)}
	var plain []string
	for _, kv := range info {
		rec.Profile[kv[0]] = kv[1]
		plain = append(plain, protocol.Escape(kv[0])+": "+protocol.Escape(kv[1]))
	}
	if id, ok := protocol.ParseID(rec.Profile["id"]); ok {
		a.remember(id, rec.Profile["nick"])
	}
	a.out.Emit(rec, strings.Join(plain, "\n"))
	return nil
}

// /msg ID TEXT: over the direct chat with ID when one is open, else
// through the server.
func (a *app) cmdMsg(ctx context.Context, args []string) error {
	if id, ok := a.knownID(args[0]); ok {
		if c := a.directChat(id); c != nil {
			a.mu.Lock()
			a.cur = strconv.FormatInt(id, 10)
			a.mu.Unlock()
			return a.sendDirect(c, args[1])
		}
	}
	sent, err := a.cl.Send(ctx, args[0], args[1])
	if err != nil {
		return err
	}
	conv := sent.Conversation()
	a.mu.Lock()
	a.cur = conv
	a.mu.Unlock()
	if err := a.rec.RecordSent(a.cl.Me(), sent, args[1]); err != nil {
		a.out.Emit(client.ErrorRecord{Type: "error", Error: "history: " + err.Error()}, "! history: "+err.Error())
	}
	to := protocol.Escape(conv)
	if sent.Group == "" {
		to = a.nameOf(sent.To)
	}
	plain := fmt.Sprintf("sent %d to %s %s", sent.ID, protocol.Escape(conv), sent.Status)
	if a.term != nil {
		plain = fmt.Sprintf("%s → %s: %s  [%s]", a.out.Stamp(sent.Time), to, protocol.Escape(args[1]), sent.Status)
	}
	a.out.Emit(sentRecord{"sent", sent.ID, sent.To, sent.Group, sent.Status, protocol.FormatTime(sent.Time)}, plain)
	return nil
}

// /history [ID] [N]
func (a *app) cmdHistory(ctx context.Context, args []string) error {
	if a.rec.Hist == nil {
		return errors.New("history is off (--no-history)")
	}
	a.mu.Lock()
	conv := a.cur
	a.mu.Unlock()
	n := 20
	if len(args) > 0 && strings.HasPrefix(args[0], "#") {
		name, err := protocol.GroupName(args[0])
		if err != nil {
			return err
		}
		conv = "#" + name
	} else if len(args) > 0 {
		id, err := a.resolve(ctx, args[0])
		if err != nil {
			return err
		}
		conv = strconv.FormatInt(id, 10)
	}
	if len(args) > 1 {
		v, err := strconv.Atoi(args[1])
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a count", args[1])
		}
		n = v
	}
	if conv == "" {
		return errors.New("no current conversation: /history ID")
	}
	recs, err := a.rec.Hist.Read(conv, n)
	if err != nil {
		return err
	}
	for _, r := range recs {
		dir := "in"
		if r.Out {
			dir = "out"
		}
		a.out.Emit(historyRecord{"history", conv, r.ID, dir, r.From, r.Nick, r.Text, protocol.FormatTime(r.Time)},
			fmt.Sprintf("%s %s (%d): %s", a.out.Stamp(r.Time), protocol.Escape(r.Nick), r.From, protocol.Escape(r.Text)))
	}
	if len(recs) == 0 && !a.cfg.JSON {
		a.out.Emit(nil, "no history with "+protocol.Escape(conv))
	}
	return nil
}

// knownID turns "1001", or a nickname seen already, into an id without
// asking the server.
func (a *app) knownID(who string) (int64, bool) {
	if id, ok := protocol.ParseID(who); ok {
		return id, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, nick := range a.known {
		if strings.EqualFold(nick, who) {
			return id, true
		}
	}
	return 0, false
}

// resolve turns "1001" or "bob" into an id (asking the server for a nickname).
func (a *app) resolve(ctx context.Context, who string) (int64, error) {
	if id, ok := a.knownID(who); ok {
		return id, nil
	}
	info, err := a.cl.Info(ctx, who)
	if err != nil {
		return 0, err
	}
	var id int64
	nick := who
	for _, kv := range info {
		switch kv[0] {
		case "id":
			id, _ = protocol.ParseID(kv[1])
		case "nick":
			nick = kv[1] // as the server spells it
		}
	}
	if id == 0 {
		return 0, fmt.Errorf("no such user %s", protocol.Escape(who))
	}
	a.remember(id, nick)
	return id, nil
}

// /wait REGEXP
//
// Events printed since the last /wait match (or since the start) count,
// so a script never misses one that came early.
func (a *app) cmdWait(ctx context.Context, args []string) error {
	re, err := regexp.Compile(args[0])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		a.mu.Lock()
		a.seenCond.Broadcast()
		a.mu.Unlock()
	})
	defer stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := a.waited; ; {
		for ; i < len(a.seen); i++ {
			if re.MatchString(a.seen[i]) {
				a.waited = i + 1
				return nil
			}
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("nothing matched %q within %s", args[0], a.cfg.Timeout)
		case a.eventsDone:
			return fmt.Errorf("connection closed before anything matched %q", args[0])
		}
		a.seenCond.Wait()
	}
}

// /help
func (a *app) cmdHelp(ctx context.Context, args []string) error {
	rec := helpRecord{Type: "help"}
	var plain []string
	for _, c := range commands {
		syn := strings.TrimSpace(c.name + " " + c.args)
		rec.Commands = append(rec.Commands, []string{syn, c.help})
		plain = append(plain, fmt.Sprintf("  %-22s %s", syn, c.help))
	}
	plain = append(plain, "  a line without / goes to the current conversation (start it with //text to send a slash)")
	a.out.Emit(rec, strings.Join(plain, "\n"))
	return nil
}

// /quit
func (a *app) cmdQuit(ctx context.Context, args []string) error {
	a.quit = true
	return nil
}

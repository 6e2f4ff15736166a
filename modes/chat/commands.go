package chat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"qchat/modes/client"
	"qchat/protocol"
)

// command is one slash command. The table below is the only list of them:
// it drives parsing, arity checks, /help, /help CMD and completion.
type command struct {
	name     string
	alias    string // another name for it (/query for /switch), or ""
	args     string // synopsis for /help
	help     string // one line for /help
	more     string // the rest of /help CMD: what it does in full
	example  string // a line to type, for /help CMD
	min, max int    // words after the name; with rest, the last one takes the rest of the line
	rest     bool   // the last argument is free text
	login    bool   // needs a logged-in session
	complete []argKind
	run      func(a *app, ctx context.Context, args []string) error
}

// argKind says what a command's argument is, for completion.
type argKind int

const (
	argNone  argKind = iota
	argUser          // a user: nicknames (any script) and ids
	argGroup         // a group: #name
	argConv          // a conversation: a user or a group
	argPaths         // file paths (each argument from there on)
)

var commands []*command

func init() {
	u, g, c, p := argUser, argGroup, argConv, argPaths
	commands = []*command{
		{name: "/register", args: "NICK", help: "create an account (and log in)", min: 1, max: 1, run: (*app).cmdRegister,
			more: "Asks the password twice (piped: $QCHAT_PASSWORD or --password-file), then logs in. The nickname is 1 to 32 letters of any script, digits, _ - or ., not all digits.", example: "/register alice"},
		{name: "/login", args: "ID", help: "log in as ID (or nickname)", min: 1, max: 1, complete: []argKind{u}, run: (*app).cmdLogin,
			more: "Asks the password (piped: $QCHAT_PASSWORD or --password-file). What waited for you while you were away arrives at once.", example: "/login alice"},
		{name: "/list", help: "who is online", login: true, run: (*app).cmdList,
			more: "Everyone who is online (only friends when the server runs with --presence friends), with their away or status text.", example: "/list"},
		{name: "/who", args: "ID", help: "a user's public profile", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdWho, example: "/who bob"},
		{name: "/msg", args: "ID|#GROUP TEXT", help: "send a message; ID becomes where plain lines go", min: 2, max: 2, rest: true, login: true, complete: []argKind{c}, run: (*app).cmdMsg,
			more: "Over the direct chat with ID when one is open (/chat), else through the server, which keeps it until ID has it. The conversation becomes the target: lines without a slash go there.", example: "/msg bob see you at 3"},
		{name: "/switch", alias: "/query", args: "ID|#GROUP", help: "make a conversation the target and show its last lines", min: 1, max: 1, login: true, complete: []argKind{c}, run: (*app).cmdSwitch,
			more: "Lines without a slash go to the target, and only you change it: /msg, /switch (or /query, as in IRC), /next, Alt-A, /chat, /join. Its unread messages count as read.", example: "/switch #team"},
		{name: "/next", help: "switch to the conversation with the oldest unread message", login: true, run: (*app).cmdNext,
			more: "The prompt lists the conversations with unread messages in this order; Alt-A jumps to the newest instead.", example: "/next"},
		{name: "/history", args: "[ID|#GROUP] [N] [--server] [/WORD/]", help: "the last N (20) messages of a conversation, or those that match /WORD/; --server: fetched from the server too", max: 4, rest: true, login: true, complete: []argKind{c}, run: (*app).cmdHistory,
			more: "Of the target when no conversation is named. /WORD/ is a regular expression (case-insensitive) the text or the sender must match. Times show the time of day for today, the day and time for this week, and the date before. With --server (a server started with --history-days) the last N messages the server kept of the conversation are merged into the local file first (none twice), so it reads as on your other devices; direct chat lines never pass through the server.", example: "/history bob 50 /invoice/"},
		{name: "/sync", help: "fill the local history files from the server's archive (all conversations, since the last sync)", login: true, run: (*app).cmdSync,
			more: "Only with a server started with --history-days. Fetches, page by page, every message of your conversations (private and group) since the last sync, and merges them into the local files in time order with none twice. chat does it by itself after each login; qchat chat --sync does it and leaves.", example: "/sync"},
		{name: "/status", help: "who you are, the server, the target, unread and open links", run: (*app).cmdStatus, example: "/status"},
		{name: "/chat", args: "ID", help: "ask ID for a direct chat (peer to peer: the server does not see it)", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdChat,
			more: "Once ID accepts, /msg ID and lines to ID go over a direct link (through the server's relay when no direct connection can be made) and into history. ID becomes the target.", example: "/chat bob"},
		{name: "/close", args: "ID", help: "end the direct chat with ID", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdClose, example: "/close bob"},
		{name: "/send", args: "ID PATH...", help: "offer files and folders to ID; sent peer to peer once accepted, resumed if cut", min: 2, max: 2, rest: true, login: true, complete: []argKind{u, p}, run: (*app).cmdSend,
			more: "Quote a path with spaces (\"my file.txt\"); ~ is your home. Once ID accepts, the files go peer to peer with a progress bar, are checked by their BLAKE3 hash and renamed into place; a cut transfer is retried and resumes. When ID is offline or does not answer, and the server keeps offline files (serve --offline-files), they are left on the server for ID, who is told at login; you are told when ID takes or refuses them, or they expire.", example: "/send bob ~/photos report.pdf"},
		{name: "/files", help: "the offline files waiting for you on the server", login: true, run: (*app).cmdFiles,
			more: "Files left for you while you were offline (a server started with --offline-files), with their number for /get. You are told of each one when you log in.", example: "/files"},
		{name: "/get", args: "FILE-ID", help: "take an offline file from the server into --dir", min: 1, max: 1, login: true, run: (*app).cmdGet,
			more: "Saved like a direct file: NAME.part, checked by its BLAKE3 hash, renamed into place; a cut transfer resumes. The server deletes it then and tells the sender. /accept FROM file takes all from FROM; /reject FROM file refuses them.", example: "/get 12"},
		{name: "/create", args: "NAME [open|invite]", help: "create a group that you own (open: anyone may join)", min: 1, max: 2, login: true, run: (*app).cmdCreate, example: "/create team invite"},
		{name: "/join", args: "NAME", help: "join an open group (it becomes the target)", min: 1, max: 1, login: true, complete: []argKind{g}, run: (*app).cmdJoin, example: "/join team"},
		{name: "/invite", args: "NAME ID", help: "invite a user into a group", min: 2, max: 2, login: true, complete: []argKind{g, u}, run: (*app).cmdInvite, example: "/invite team bob"},
		{name: "/leave", args: "NAME", help: "leave a group", min: 1, max: 1, login: true, complete: []argKind{g}, run: (*app).cmdLeave, example: "/leave team"},
		{name: "/members", args: "NAME", help: "a group's members and who is online", min: 1, max: 1, login: true, complete: []argKind{g}, run: (*app).cmdMembers, example: "/members team"},
		{name: "/groups", help: "the groups you are in", login: true, run: (*app).cmdGroups, example: "/groups"},
		{name: "/kick", args: "NAME ID", help: "remove a member from your group", min: 2, max: 2, login: true, complete: []argKind{g, u}, run: (*app).cmdKick, example: "/kick team mallory"},
		{name: "/find", args: "TEXT", help: "search users by nickname or id", min: 1, max: 1, rest: true, login: true, run: (*app).cmdFind, example: "/find bo"},
		{name: "/add", args: "ID", help: "ask a user to be your friend", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdAdd, example: "/add bob"},
		{name: "/accept", args: "ID [#GROUP|chat|file]", help: "accept what ID asked: a friend request, group invite, direct chat or files", min: 1, max: 2, login: true, complete: []argKind{u}, run: (*app).cmdAccept,
			more: "With several requests from ID, the second word says which. Accepted files go into --dir.", example: "/accept bob file"},
		{name: "/reject", args: "ID [#GROUP|chat|file]", help: "refuse what ID asked", min: 1, max: 2, login: true, complete: []argKind{u}, run: (*app).cmdReject, example: "/reject mallory"},
		{name: "/pending", help: "requests waiting for your answer", login: true, run: (*app).cmdPending, example: "/pending"},
		{name: "/friends", help: "your friends, who is online and their status", login: true, run: (*app).cmdFriends, example: "/friends"},
		{name: "/remove", args: "ID", help: "end a friendship", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdRemove, example: "/remove bob"},
		{name: "/block", args: "ID", help: "drop everything ID sends you, without telling them", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdBlock, example: "/block mallory"},
		{name: "/unblock", args: "ID", help: "stop blocking ID", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdUnblock, example: "/unblock mallory"},
		{name: "/profile", args: "[set FIELD VALUE]", help: "show your profile, or set nick, sex, age, address or status (- clears)", max: 3, rest: true, login: true, run: (*app).cmdProfile, example: "/profile set status at lunch"},
		{name: "/passwd", help: "change your password (asks the old one and the new one twice)", login: true, run: (*app).cmdPasswd,
			more: "Piped, the next three input lines are the old password and the new one twice.", example: "/passwd"},
		{name: "/set", args: "receipts|typing on|off", help: "turn delivery and read receipts, or typing notifications, on or off (both ways)", min: 2, max: 2, login: true, run: (*app).cmdSet,
			more: "Kept by the server for every device. Off, nobody gets yours and you get nobody's. The prompt shows the marks of your last message to the target (✓ the server has it, ✓✓ shown on their screen, ✓✓ read) and who is typing to you; /profile shows the settings.", example: "/set typing off"},
		{name: "/read", args: "[ID]", help: "tell ID (the target) that you have read their messages", max: 1, login: true, complete: []argKind{u}, run: (*app).cmdRead,
			more: "At a terminal chat says it by itself when the conversation is the target and the window has focus (or you type in it); piped, scripts say it with /read.", example: "/read bob"},
		{name: "/typing", args: "ID on|off", help: "scripts: tell ID that you are typing, or stopped", min: 2, max: 2, login: true, complete: []argKind{u}, run: (*app).cmdTyping,
			more: "At a terminal chat says it by itself while you type a line to the target.", example: "/typing bob on"},
		{name: "/nudge", args: "ID", help: "shake an online user's window", min: 1, max: 1, login: true, complete: []argKind{u}, run: (*app).cmdNudge, example: "/nudge bob"},
		{name: "/away", args: "[TEXT]", help: "mark yourself away", max: 1, rest: true, login: true, run: (*app).cmdAway, example: "/away lunch, back at 2"},
		{name: "/back", help: "back from away", login: true, run: (*app).cmdBack, example: "/back"},
		{name: "/wait", args: "REGEXP", help: "scripts: wait until an event line (as printed) matches REGEXP, or fail after --timeout", min: 1, max: 1, rest: true, run: (*app).cmdWait,
			more: "Events printed since the last /wait count, so a script never misses one that came early.", example: "/wait from bob"},
		{name: "/help", args: "[COMMAND]", help: "this list, or one command in full", max: 1, run: (*app).cmdHelp, example: "/help send"},
		{name: "/quit", help: "log out and leave (Ctrl-D too)", run: (*app).cmdQuit, example: "/quit"},
	}
}

// lookupCommand finds a command by its name or alias ("/msg"), as typed
// in lower case.
func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name || c.alias != "" && c.alias == name {
			return c
		}
	}
	return nil
}

// argAt is what the command's argument number i (0-based) is.
func (c *command) argAt(i int) argKind {
	switch {
	case i < len(c.complete):
		return c.complete[i]
	case len(c.complete) > 0 && c.complete[len(c.complete)-1] == argPaths:
		return argPaths
	}
	return argNone
}

// codedError is an error that says what kind of failure it is (for the
// JSON error's code).
type codedError struct {
	code string
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// errorCode says what kind of failure err is (the JSON error's code) and
// the message for it: the server's reply code and text when the server
// refused.
func errorCode(err error) (code, msg string) {
	var pe *protocol.Error
	var ce *codedError
	var ue errUsage
	var ke *client.ServerKeyError
	var de *client.DialError
	var ne *client.NotConnectedError
	var ge *client.GaveUpError
	var oe *net.OpError
	var unr *client.UnreachableError
	switch {
	case errors.As(err, &ce):
		return ce.code, ce.msg
	case errors.As(err, &unr): // several servers: each one's failure, whatever it was
		return client.CodeUnreachable, err.Error()
	case errors.As(err, &pe):
		return strconv.Itoa(pe.Code), pe.Text
	case errors.As(err, &ue):
		return client.CodeUsage, ue.Error()
	case errors.As(err, &ke), errors.Is(err, client.ErrServerKeyChanged), errors.Is(err, client.ErrServerKeyUnknown):
		return client.CodeServerKey, err.Error()
	case errors.As(err, &ge) && errors.As(ge.Last, &de):
		return client.CodeUnreachable, err.Error()
	case errors.As(err, &de), errors.As(err, &oe) && oe.Op == "dial":
		return client.CodeUnreachable, err.Error()
	case errors.As(err, &ne), errors.As(err, &ge), errors.Is(err, client.ErrClosed):
		return client.CodeConnection, err.Error()
	case errors.Is(err, client.ErrTLSRefused), errors.Is(err, client.ErrTLSInjected):
		return client.CodeTLS, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return client.CodeTimeout, err.Error()
	}
	return client.CodeFailed, err.Error()
}

// errUsage is a command typed wrong; the text says how to type it.
type errUsage struct{ c *command }

func (e errUsage) Error() string {
	return "usage: " + strings.TrimSpace(e.c.name+" "+e.c.args) + " (/help " + strings.TrimPrefix(e.c.name, "/") + ")"
}

// typedKey carries the command line as typed in a command's context (the
// "command" of its JSON results).
type typedKey struct{}

// emit prints a command's result: obj gets the command line as typed.
func (a *app) emit(ctx context.Context, obj any, plain string) string {
	if line, ok := ctx.Value(typedKey{}).(string); ok {
		client.SetCommand(obj, line)
	}
	return a.out.Emit(obj, plain)
}

// exec runs one input line: a slash command, or text for the target.
func (a *app) exec(ctx context.Context, line string) error {
	trimmed := strings.TrimLeft(line, " ")
	ctx = context.WithValue(ctx, typedKey{}, strings.TrimSpace(line))
	if !strings.HasPrefix(trimmed, "/") || strings.HasPrefix(trimmed, "//") {
		text := strings.TrimPrefix(trimmed, "/") // "//x" sends "/x"
		a.mu.Lock()
		cur := a.cur
		a.mu.Unlock()
		if cur == "" {
			return &codedError{client.CodeUsage, "no target yet: start a conversation with /msg ID TEXT or /switch ID"}
		}
		return a.cmdMsg(ctx, []string{cur, text})
	}
	name, rest, _ := strings.Cut(trimmed, " ")
	c := lookupCommand(strings.ToLower(name))
	if c == nil {
		return &codedError{client.CodeUnknown, fmt.Sprintf("unknown command %s (try /help)", protocol.Escape(protocol.Clip(name, 20)))}
	}
	args := splitArgs(rest, c)
	if len(args) < c.min || len(args) > c.max {
		return errUsage{c}
	}
	if c.login && a.cl.Me().ID == 0 {
		return &codedError{client.CodeLoginFirst, "log in first: /login ID or /register NICK"}
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
	userRecord struct {
		client.Result        // "registered", "login"
		ID            int64  `json:"id"`
		Nick          string `json:"nick"`
	}
	listRecord struct {
		client.Result                   // "list"
		Online        []client.UserItem `json:"online"`
	}
	profileRecord struct {
		client.Result                   // "profile"
		ID            int64             `json:"id"`
		Nick          string            `json:"nick"`
		Profile       map[string]string `json:"profile"`
	}
	sentRecord struct {
		client.Result        // "sent"; its time is the server's time of the message
		ID            int64  `json:"id"`
		To            int64  `json:"to,omitempty"`
		ToNick        string `json:"to_nick,omitempty"`
		Group         string `json:"group,omitempty"`
		Status        string `json:"status"`         // "delivered", "stored" or "direct"
		Mark          string `json:"mark,omitempty"` // "shown" or "read": a receipt that came with the answer
		CID           string `json:"cid,omitempty"`  // the client id, as in the "pending" record before it
	}
	historyRecord struct {
		client.Result        // "history"; its time is the message's
		Conversation  string `json:"conversation"`
		ID            int64  `json:"id"`
		Direction     string `json:"direction"` // "in" or "out"
		From          int64  `json:"from"`
		FromNick      string `json:"from_nick"`
		Text          string `json:"text"`
	}
	switchRecord struct {
		client.Result        // "switch"
		Conversation  string `json:"conversation"`
		Nick          string `json:"nick,omitempty"` // of a user conversation
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
	a.emit(ctx, &userRecord{Result: client.NewResult("registered"), ID: u.ID, Nick: u.Nick}, fmt.Sprintf("registered %d %s", u.ID, protocol.Escape(u.Nick)))
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
	a.emit(ctx, &userRecord{Result: client.NewResult("login"), ID: me.ID, Nick: me.Nick}, "logged in as "+client.Name(me.ID, me.Nick))
	return nil
}

// userLine is a user of a list for people: "bob (1001) away: lunch".
func userLine(p client.Presence) string {
	l := client.Name(p.ID, p.Nick) + " " + protocol.Escape(p.State)
	if p.Status != "" {
		l += ": " + protocol.Escape(p.Status)
	}
	return l
}

// /list
func (a *app) cmdList(ctx context.Context, args []string) error {
	online, err := a.cl.List(ctx)
	if err != nil {
		return err
	}
	rec := &listRecord{Result: client.NewResult("list"), Online: []client.UserItem{}}
	var plain []string
	for _, p := range online {
		a.remember(p.ID, p.Nick)
		rec.Online = append(rec.Online, client.UserItem{ID: p.ID, Nick: p.Nick, State: p.State, Status: p.Status})
		plain = append(plain, userLine(p))
	}
	plain = append(plain, fmt.Sprintf("%d online", len(online)))
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

// /who ID
func (a *app) cmdWho(ctx context.Context, args []string) error {
	info, err := a.cl.Info(ctx, args[0])
	if err != nil {
		return err
	}
	rec := &profileRecord{Result: client.NewResult("profile"), Profile: make(map[string]string)}
	var plain []string
	for _, kv := range info {
		rec.Profile[kv[0]] = kv[1]
		plain = append(plain, protocol.Escape(kv[0])+": "+protocol.Escape(kv[1]))
	}
	if id, ok := protocol.ParseID(rec.Profile["id"]); ok {
		rec.ID, rec.Nick = id, rec.Profile["nick"]
		a.remember(id, rec.Nick)
	}
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

// /msg ID TEXT: over the direct chat with ID when one is open, else
// through the server. The conversation becomes the target.
func (a *app) cmdMsg(ctx context.Context, args []string) error {
	if id, ok := a.knownID(args[0]); ok {
		if c := a.directChat(id); c != nil {
			a.setTarget(strconv.FormatInt(id, 10))
			return a.sendDirect(ctx, c, args[1])
		}
	}
	// The target changes now, by the user's action, where it is known
	// already (a group, an id, a nickname seen); else with the answer.
	if conv, ok := a.knownConversation(args[0]); ok {
		a.setTarget(conv)
	}
	p, err := a.cl.Submit(args[0], args[1])
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
		return a.showSent(ctx, p, true)
	case <-a.cl.Lost():
	case <-ctx.Done():
	}
	// No connection, or lost before the answer: the message waits in the
	// outbox and goes (again) once the connection is back.
	if ctx.Err() == nil || a.term != nil {
		a.note(a.out.Pending(p, protocol.Escape(args[0])))
	}
	if a.term != nil {
		later := context.WithoutCancel(ctx) // the command is over when the answer comes
		go func() {
			select {
			case <-p.Done():
				if err := a.showSent(later, p, false); err != nil {
					a.fail(a.stderr, "/msg", err)
				}
			case <-a.cl.Done():
			}
		}()
		return nil
	}
	// Piped: the command waits for it, as long as the session waits for
	// the server (--timeout).
	select {
	case <-p.Done():
	case <-a.cl.Done():
		a.cl.Outbox().Finish(p, client.Sent{}, a.cl.Err())
	case <-ctx.Done():
		a.cl.Outbox().Finish(p, client.Sent{}, ctx.Err())
	}
	return a.showSent(ctx, p, true)
}

// knownConversation is the conversation that who names, when it can be
// told without the server: "#group", an id, or a nickname seen already.
func (a *app) knownConversation(who string) (string, bool) {
	if strings.HasPrefix(who, "#") {
		g, err := groupArg(who)
		return g, err == nil
	}
	if id, ok := a.knownID(who); ok {
		return strconv.FormatInt(id, 10), true
	}
	return "", false
}

// showSent shows the outcome of a message sent through the server (from
// /msg, or later for one that was pending). now: the command is still
// running, so its conversation becomes the target (a pending one that
// goes through later leaves the target alone: the user may have moved on).
func (a *app) showSent(ctx context.Context, p *client.Pending, now bool) error {
	sent, err := p.Result()
	var pe *protocol.Error
	if err != nil && !errors.As(err, &pe) {
		return fmt.Errorf("not sent to %s: %q: %w", protocol.Escape(p.To), protocol.Clip(p.Text, 60), err)
	}
	if err != nil {
		if id, ok := a.knownID(p.To); ok {
			err = named(err, client.User{ID: id, Nick: a.nickOf(id)})
		}
		return err
	}
	conv := sent.Conversation()
	if now {
		a.setTarget(conv)
	}
	if err := a.rec.RecordSent(a.cl.Me(), sent, p.Text); err != nil {
		a.historyFailed(err)
	}
	a.sentMark(sent)
	to, toNick := protocol.Escape(conv), ""
	if sent.Group == "" {
		toNick = a.nickFor(ctx, sent.To, p.To)
		to = client.Name(sent.To, toNick)
	}
	status := sent.Status
	if sent.Mark != "" {
		status += ", " + sent.Mark // the recipient's client has shown it, or the recipient read it (receipts.go)
	}
	plain := fmt.Sprintf("sent %d to %s %s", sent.ID, to, status)
	if a.term != nil {
		plain = fmt.Sprintf("%s → %s: %s  [%s]", a.out.Stamp(sent.Time), to, protocol.Escape(p.Text), status)
	}
	rec := &sentRecord{Result: client.NewResult("sent"), ID: sent.ID, To: sent.To, ToNick: toNick, Group: sent.Group, Status: sent.Status, Mark: sent.Mark, CID: p.CID}
	rec.Time = protocol.FormatTime(sent.Time)
	a.emit(ctx, rec, plain)
	return nil
}

// nickFor is the nickname of user id, to show: the one known; else the
// one typed, when the user typed a nickname (the server took it, so it
// names id); else the server's (INFO). "" when it cannot be had.
func (a *app) nickFor(ctx context.Context, id int64, typed string) string {
	if nick := a.nickOf(id); nick != "" {
		return nick
	}
	if _, isID := protocol.ParseID(typed); !isID && typed != "" {
		a.rememberIfUnknown(id, typed)
		return typed
	}
	if u, err := a.peer(ctx, strconv.FormatInt(id, 10)); err == nil {
		return u.Nick
	}
	return ""
}

// historyFailed reports that the history files could not be written (the
// message itself went through).
func (a *app) historyFailed(err error) {
	a.out.Emit(client.NewError("", client.CodeHistory, "history: "+err.Error()), "! history: "+protocol.Escape(err.Error()))
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
	u, err := a.peer(ctx, who)
	return u.ID, err
}

// peer turns "1001" or "bob" into a user with id and nickname, asking
// the server (INFO) for what is not known yet.
func (a *app) peer(ctx context.Context, who string) (client.User, error) {
	if id, ok := a.knownID(who); ok {
		if nick := a.nickOf(id); nick != "" {
			return client.User{ID: id, Nick: nick}, nil
		}
	}
	info, err := a.cl.Info(ctx, who)
	if err != nil {
		return client.User{}, err
	}
	var u client.User
	for _, kv := range info {
		switch kv[0] {
		case "id":
			u.ID, _ = protocol.ParseID(kv[1])
		case "nick":
			u.Nick = kv[1] // as the server spells it
		}
	}
	if u.ID == 0 {
		return client.User{}, fmt.Errorf("no such user %s", protocol.Escape(who))
	}
	a.remember(u.ID, u.Nick)
	return u, nil
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
			return &codedError{client.CodeTimeout, fmt.Sprintf("nothing matched %q within %s", args[0], a.cfg.Timeout)}
		case a.eventsDone:
			return &codedError{client.CodeConnection, fmt.Sprintf("connection closed before anything matched %q", args[0])}
		}
		a.seenCond.Wait()
	}
}

// /quit
func (a *app) cmdQuit(ctx context.Context, args []string) error {
	a.quit = true
	return nil
}

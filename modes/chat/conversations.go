package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"qchat/modes/client"
	"qchat/protocol"
)

// The target and the unread conversations, as irssi and weechat keep
// them: the target (app.cur, where a line without a slash goes) changes
// only by the user's own action (/msg, /chat, /switch, /query, /next,
// Alt-A, /join, accepting an invite), never because someone else wrote;
// only the first conversation that comes in while there is no target
// becomes it. Messages of other conversations count as unread until the
// user switches to them. The prompt shows both:
//
//	alice → bob [3 unread: carol 2, #team 1]>
//
// All of it is under app.mu.

// unreadConv counts the unread messages of one conversation.
type unreadConv struct {
	n     int
	first uint64 // arrival number of the oldest unread message
	last  uint64 // and of the newest
}

// arrived notes a new message of conversation conv (a user id or #group)
// that was just printed, and redraws the prompt.
func (a *app) arrived(conv string) {
	a.mu.Lock()
	switch {
	case a.cur == "":
		a.cur = conv
	case conv != a.cur:
		a.arrivals++
		u := a.unread[conv]
		if u == nil {
			u = &unreadConv{first: a.arrivals}
			a.unread[conv] = u
		}
		u.n++
		u.last = a.arrivals
	}
	a.mu.Unlock()
	a.refreshPrompt()
}

// setTarget makes conv the target (the user asked) and its messages read
// (on a terminal, also for their senders: receipts.go).
func (a *app) setTarget(conv string) {
	a.mu.Lock()
	a.cur = conv
	delete(a.unread, conv)
	a.mu.Unlock()
	a.refreshPrompt()
	a.readTarget()
}

// refreshPrompt redraws the prompt (on a terminal) with what it shows now.
func (a *app) refreshPrompt() {
	if a.term != nil {
		a.term.line.RefreshPrompt()
	}
}

// unreadLocked lists the conversations with unread messages, the oldest
// first (the order /next visits them).
func (a *app) unreadLocked() []string {
	convs := make([]string, 0, len(a.unread))
	for c := range a.unread {
		convs = append(convs, c)
	}
	slices.SortFunc(convs, func(x, y string) int { return int(a.unread[x].first) - int(a.unread[y].first) })
	return convs
}

// convLabelLocked names a conversation for people: the user's nickname
// (the id when none is known yet), or the group. Safe for a terminal.
func (a *app) convLabelLocked(conv string) string {
	if id, ok := protocol.ParseID(conv); ok && a.known[id] != "" {
		return protocol.Escape(a.known[id])
	}
	return protocol.Escape(conv)
}

// convName names a conversation in full: "bob (1001)" or "#team".
func (a *app) convName(conv string) string {
	if id, ok := protocol.ParseID(conv); ok {
		return a.nameOf(id)
	}
	return protocol.Escape(conv)
}

// prompt shows who I am, where a line without a slash goes and what is
// unread elsewhere, to fit in width columns (0: no limit):
// "alice → bob [3 unread: carol 2, #team 1]> ". It holds no control
// characters (liner refuses them) and no colour.
func (a *app) prompt() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.promptLocked(a.width())
}

func (a *app) promptLocked(width int) string {
	if a.me.ID == 0 {
		return "qchat> "
	}
	p := protocol.Escape(a.me.Nick)
	if a.cur != "" {
		p += " → " + a.convLabelLocked(a.cur)
		if mark := a.markLocked(a.cur); mark != "" {
			p += " " + mark
		}
	}
	if typing := a.typingLocked(); typing != "" {
		p += " " + typing
	}
	convs := a.unreadLocked()
	total := 0
	for _, c := range convs {
		total += a.unread[c].n
	}
	if total == 0 {
		return p + "> "
	}
	// As many conversations as fit, the oldest first; the rest counted.
	// liner wants ten columns left for typing; we leave a third.
	limit := width * 2 / 3
	for shown := len(convs); ; shown-- {
		parts := make([]string, 0, shown+1)
		for _, c := range convs[:shown] {
			parts = append(parts, fmt.Sprintf("%s %d", a.convLabelLocked(c), a.unread[c].n))
		}
		if shown < len(convs) {
			parts = append(parts, fmt.Sprintf("+%d more", len(convs)-shown))
		}
		s := fmt.Sprintf("%s [%d unread: %s]> ", p, total, strings.Join(parts, ", "))
		if shown == 0 || width <= 0 || displayWidth(s) <= limit {
			return s
		}
	}
}

// /switch NAME and /query NAME: make a conversation (a user or #group)
// the target and show its last lines.
func (a *app) cmdSwitch(ctx context.Context, args []string) error {
	conv, err := a.conversationArg(ctx, args[0])
	if err != nil {
		return err
	}
	return a.switchTo(ctx, conv)
}

// /next: switch to the conversation whose unread messages are the oldest.
func (a *app) cmdNext(ctx context.Context, args []string) error {
	a.mu.Lock()
	convs := a.unreadLocked()
	a.mu.Unlock()
	if len(convs) == 0 {
		return errors.New("nothing unread")
	}
	return a.switchTo(ctx, convs[0])
}

// newestUnread switches to the conversation with the newest unread
// message (Alt-A at the prompt); nothing unread, nothing happens.
func (a *app) newestUnread() {
	a.mu.Lock()
	best := ""
	for c, u := range a.unread {
		if best == "" || u.last > a.unread[best].last {
			best = c
		}
	}
	a.mu.Unlock()
	if best != "" {
		a.switchTo(context.Background(), best)
	}
}

// switchLines is how many lines of a conversation a switch shows.
const switchLines = 10

// switchTo makes conv the target and shows its last lines from history.
func (a *app) switchTo(ctx context.Context, conv string) error {
	a.setTarget(conv)
	a.emit(ctx, &switchRecord{Result: client.NewResult("switch"), Conversation: conv, Nick: a.conversationNick(conv)},
		"* talking to "+a.convName(conv)+a.lastMarkText(conv))
	if a.rec.Hist == nil {
		return nil
	}
	recs, err := a.rec.Hist.Read(conv, switchLines)
	if err != nil {
		return err
	}
	for _, r := range recs {
		a.out.Emit(nil, a.historyLine(r))
	}
	return nil
}

// conversationNick is the nickname of a user conversation ("" for groups
// and users not known).
func (a *app) conversationNick(conv string) string {
	if id, ok := protocol.ParseID(conv); ok {
		return a.nickOf(id)
	}
	return ""
}

// conversationArg reads a conversation from what the user typed: "#team",
// an id, or a nickname (asking the server for one not seen yet).
func (a *app) conversationArg(ctx context.Context, s string) (string, error) {
	if strings.HasPrefix(s, "#") {
		return groupArg(s)
	}
	id, err := a.resolve(ctx, s)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(id, 10), nil
}

type (
	unreadItem struct {
		Conversation string `json:"conversation"`
		Nick         string `json:"nick,omitempty"`
		Count        int    `json:"count"`
	}
	statusRecord struct {
		client.Result                   // "status"
		ID            int64             `json:"id,omitempty"` // 0 before login
		Nick          string            `json:"nick,omitempty"`
		Server        string            `json:"server"`  // its name
		Address       string            `json:"address"` // as dialed: the server in use (of --server a,b,c)
		Target        string            `json:"target,omitempty"`
		TargetNick    string            `json:"target_nick,omitempty"`
		Unread        []unreadItem      `json:"unread"`
		Chats         []client.UserItem `json:"chats"` // open direct chats (state "direct")
	}
)

// /status: who I am, where, the target, what is unread, the open direct
// chats.
func (a *app) cmdStatus(ctx context.Context, args []string) error {
	rec := &statusRecord{Result: client.NewResult("status"), Server: a.cl.Server(), Address: a.cl.Addr(),
		Unread: []unreadItem{}, Chats: []client.UserItem{}}
	var plain []string
	a.mu.Lock()
	rec.ID, rec.Nick = a.me.ID, a.me.Nick
	rec.Target = a.cur
	var unread []string
	for _, c := range a.unreadLocked() {
		it := unreadItem{Conversation: c, Count: a.unread[c].n}
		if id, ok := protocol.ParseID(c); ok {
			it.Nick = a.known[id]
		}
		rec.Unread = append(rec.Unread, it)
		unread = append(unread, fmt.Sprintf("%s %d", a.convLabelLocked(c), it.Count))
	}
	a.mu.Unlock()
	if rec.ID == 0 {
		plain = append(plain, fmt.Sprintf("not logged in; connected to %s (%s)", protocol.Escape(rec.Server), protocol.Escape(rec.Address)))
	} else {
		plain = append(plain, fmt.Sprintf("logged in as %s on %s (%s)", client.Name(rec.ID, rec.Nick), protocol.Escape(rec.Server), protocol.Escape(rec.Address)))
	}
	if rec.Target != "" {
		rec.TargetNick = a.conversationNick(rec.Target)
		plain = append(plain, "target: "+a.convName(rec.Target))
	} else {
		plain = append(plain, "target: none yet (/msg or /switch)")
	}
	if len(unread) > 0 {
		plain = append(plain, "unread: "+strings.Join(unread, ", ")+" (/next)")
	} else {
		plain = append(plain, "unread: nothing")
	}
	a.links.mu.Lock()
	var chats []string
	for id := range a.links.chats {
		rec.Chats = append(rec.Chats, client.UserItem{ID: id, Nick: a.nickOf(id), State: "direct"})
	}
	a.links.mu.Unlock()
	slices.SortFunc(rec.Chats, func(x, y client.UserItem) int { return int(x.ID - y.ID) })
	for _, c := range rec.Chats {
		chats = append(chats, client.Name(c.ID, c.Nick))
	}
	if len(chats) > 0 {
		plain = append(plain, "direct chats: "+strings.Join(chats, ", "))
	}
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

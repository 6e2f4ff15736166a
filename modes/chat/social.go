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

// Commands for groups, friends, profiles and status. Most are one request
// whose reply text is the result; lists are parsed and printed safely.

type (
	// okRecord is the result of a command that has no record of its own:
	// the server's text (with nicknames), and whom and what it was about.
	okRecord struct {
		client.Result        // "ok"
		Text          string `json:"text"`
		ID            int64  `json:"id,omitempty"` // the user it was about
		Nick          string `json:"nick,omitempty"`
		Group         string `json:"group,omitempty"` // the group it was about
		Kind          string `json:"kind,omitempty"`  // /accept, /reject: friend, invite, chat or file
	}
	usersRecord struct {
		client.Result                   // "friends" or "found"
		Users         []client.UserItem `json:"users"`
	}
	memberItem struct {
		ID    int64  `json:"id"`
		Nick  string `json:"nick"`
		State string `json:"state"`
		Owner bool   `json:"owner"`
	}
	membersRecord struct {
		client.Result              // "members"
		Group         string       `json:"group"`
		Members       []memberItem `json:"members"`
	}
	groupItem struct {
		Name    string `json:"name"`
		Members int    `json:"members"`
		Mode    string `json:"mode"` // "open" or "invite"
		Owner   bool   `json:"owner"`
	}
	groupsRecord struct {
		client.Result             // "groups"
		Groups        []groupItem `json:"groups"`
	}
	pendingItem struct {
		Kind     string `json:"kind"` // "friend", "invite", "chat" or "file"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Group    string `json:"group,omitempty"`
		Name     string `json:"name,omitempty"`  // file offers
		Files    int    `json:"files,omitempty"` // file offers
		Size     int64  `json:"size,omitempty"`  // file offers
	}
	pendingRecord struct {
		client.Result               // "pending"
		Requests      []pendingItem `json:"requests"`
	}
)

// simple runs one request about a user (peer, may be zero) and a group
// (may be ""), and prints its reply text with the user's id shown as
// "nick (id)".
func (a *app) simple(ctx context.Context, peer client.User, group, verb string, args ...string) error {
	r, err := a.cl.Do(ctx, verb, args...)
	if err != nil {
		return named(err, peer)
	}
	text := withName(r.Text, peer)
	a.emit(ctx, &okRecord{Result: client.NewResult("ok"), Text: text, ID: peer.ID, Nick: peer.Nick, Group: group}, protocol.Escape(text))
	return nil
}

// withName writes u's id in a text of the server's as "nick (id)".
func withName(text string, u client.User) string {
	if u.ID == 0 || u.Nick == "" {
		return text
	}
	id := strconv.FormatInt(u.ID, 10)
	return regexp.MustCompile(`\b`+id+`\b`).ReplaceAllLiteralString(text, u.Nick+" ("+id+")")
}

// named is err with u's id written as "nick (id)" when the server refused
// ("1001 is not online": "bob (1001) is not online").
func named(err error, u client.User) error {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return err
	}
	return &protocol.Error{Code: pe.Code, Text: withName(pe.Text, u)}
}

// userCmd runs VERB <id> for the user who names, with the result in
// nicknames.
func (a *app) userCmd(ctx context.Context, verb, who string) error {
	u, err := a.peer(ctx, who)
	if err != nil {
		return err
	}
	return a.simple(ctx, u, "", verb, strconv.FormatInt(u.ID, 10))
}

// groupArg checks a group name and returns it as "#name".
func groupArg(s string) (string, error) {
	name, err := protocol.GroupName(s)
	if err != nil {
		return "", err
	}
	return "#" + name, nil
}

// /create NAME [open|invite]
func (a *app) cmdCreate(ctx context.Context, args []string) error {
	g, err := groupArg(args[0])
	if err != nil {
		return err
	}
	if err := a.simple(ctx, client.User{}, g, "CREATE", append([]string{g}, args[1:]...)...); err != nil {
		return err
	}
	a.rememberGroup(g)
	return nil
}

// /join NAME, /leave NAME
func (a *app) cmdJoin(ctx context.Context, args []string) error { return a.groupCmd(ctx, "JOIN", args) }
func (a *app) cmdLeave(ctx context.Context, args []string) error {
	return a.groupCmd(ctx, "LEAVE", args)
}

// /invite NAME ID, /kick NAME ID
func (a *app) cmdInvite(ctx context.Context, args []string) error {
	return a.groupCmd(ctx, "INVITE", args)
}
func (a *app) cmdKick(ctx context.Context, args []string) error { return a.groupCmd(ctx, "KICK", args) }

func (a *app) groupCmd(ctx context.Context, verb string, args []string) error {
	g, err := groupArg(args[0])
	if err != nil {
		return err
	}
	var u client.User
	wire := []string{g}
	if len(args) > 1 {
		if u, err = a.peer(ctx, args[1]); err != nil {
			return err
		}
		wire = append(wire, strconv.FormatInt(u.ID, 10))
	}
	if err := a.simple(ctx, u, g, verb, wire...); err != nil {
		return err
	}
	if verb == "JOIN" {
		a.rememberGroup(g)
		a.setTarget(g)
	}
	return nil
}

// /members NAME
func (a *app) cmdMembers(ctx context.Context, args []string) error {
	g, err := groupArg(args[0])
	if err != nil {
		return err
	}
	r, err := a.cl.Do(ctx, "MEMBERS", g)
	if err != nil {
		return err
	}
	rec := &membersRecord{Result: client.NewResult("members"), Group: g, Members: []memberItem{}}
	var plain []string
	for _, l := range r.Lines {
		f := strings.Fields(l)
		id, ok := protocol.ParseID(firstOf(f))
		if !ok || len(f) < 4 {
			continue
		}
		a.remember(id, f[1])
		m := memberItem{ID: id, Nick: f[1], State: f[2], Owner: f[3] == "owner"}
		rec.Members = append(rec.Members, m)
		line := client.Name(id, m.Nick) + " " + protocol.Escape(m.State)
		if m.Owner {
			line += ", owner"
		}
		plain = append(plain, line)
	}
	plain = append(plain, fmt.Sprintf("%d members of %s", len(rec.Members), protocol.Escape(g)))
	a.rememberGroup(g)
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

func firstOf(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// /groups
func (a *app) cmdGroups(ctx context.Context, args []string) error {
	r, err := a.cl.Do(ctx, "GROUPS")
	if err != nil {
		return err
	}
	rec := &groupsRecord{Result: client.NewResult("groups"), Groups: []groupItem{}}
	var plain []string
	for _, l := range r.Lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		g := groupItem{Name: f[0], Members: n, Mode: f[2], Owner: len(f) > 3 && f[3] == "owner"}
		rec.Groups = append(rec.Groups, g)
		a.rememberGroup(g.Name)
		line := fmt.Sprintf("%s %d members, %s", protocol.Escape(g.Name), n, protocol.Escape(g.Mode))
		if g.Owner {
			line += ", yours"
		}
		plain = append(plain, line)
	}
	plain = append(plain, fmt.Sprintf("%d groups", len(rec.Groups)))
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

// users prints a list of users (FRIENDS, FIND) as recType.
func (a *app) users(ctx context.Context, recType, what, verb string, args ...string) error {
	list, err := a.cl.Users(ctx, verb, args...)
	if err != nil {
		return err
	}
	rec := &usersRecord{Result: client.NewResult(recType), Users: []client.UserItem{}}
	var plain []string
	for _, p := range list {
		a.remember(p.ID, p.Nick)
		rec.Users = append(rec.Users, client.UserItem{ID: p.ID, Nick: p.Nick, State: p.State, Status: p.Status})
		plain = append(plain, userLine(p))
	}
	plain = append(plain, fmt.Sprintf("%d %s", len(list), what))
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

// /friends
func (a *app) cmdFriends(ctx context.Context, args []string) error {
	return a.users(ctx, "friends", "friends", "FRIENDS")
}

// /find TEXT
func (a *app) cmdFind(ctx context.Context, args []string) error {
	return a.users(ctx, "found", "found", "FIND", args[0])
}

// /add ID, /remove ID, /block ID, /unblock ID, /nudge ID
func (a *app) cmdAdd(ctx context.Context, args []string) error { return a.userCmd(ctx, "ADD", args[0]) }
func (a *app) cmdRemove(ctx context.Context, args []string) error {
	return a.userCmd(ctx, "REMOVE", args[0])
}
func (a *app) cmdBlock(ctx context.Context, args []string) error {
	return a.userCmd(ctx, "BLOCK", args[0])
}
func (a *app) cmdUnblock(ctx context.Context, args []string) error {
	return a.userCmd(ctx, "UNBLOCK", args[0])
}
func (a *app) cmdNudge(ctx context.Context, args []string) error {
	return a.userCmd(ctx, "NUDGE", args[0])
}

// /away [TEXT], /back
func (a *app) cmdAway(ctx context.Context, args []string) error {
	return a.simple(ctx, client.User{}, "", "AWAY", args...)
}
func (a *app) cmdBack(ctx context.Context, args []string) error {
	return a.simple(ctx, client.User{}, "", "BACK")
}

// pending is one request waiting for my answer, from the server:
// a friend request, a group invite, or an offer (chat, file).
type pending struct {
	kind, nick, group string
	from              int64
	offer             client.OfferEvent // chat and file offers
}

func (a *app) pendingList(ctx context.Context) ([]pending, error) {
	r, err := a.cl.Do(ctx, "PENDING")
	if err != nil {
		return nil, err
	}
	var out []pending
	for _, l := range r.Lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		id, ok := protocol.ParseID(f[1])
		if !ok {
			continue
		}
		p := pending{kind: f[0], from: id, nick: f[2]}
		switch {
		case p.kind == "chat" && len(f) == 4:
			p.offer = client.OfferEvent{Ticket: f[3], From: id, FromNick: f[2], Purpose: "chat"}
		case p.kind == "file" && len(f) >= 7:
			n, _ := strconv.Atoi(f[4])
			size, _ := strconv.ParseInt(f[5], 10, 64)
			name := afterWords(l, 6)
			p.offer = client.OfferEvent{Ticket: f[3], From: id, FromNick: f[2], Purpose: "file", Count: n, Bytes: size, Name: name}
		case len(f) > 3:
			p.group = f[3]
		}
		a.remember(id, p.nick)
		out = append(out, p)
	}
	return out, nil
}

// afterWords returns what follows the first n space-separated words of s.
func afterWords(s string, n int) string {
	for range n {
		_, s, _ = strings.Cut(s, " ")
	}
	return s
}

// /pending
func (a *app) cmdPending(ctx context.Context, args []string) error {
	items, err := a.pendingList(ctx)
	if err != nil {
		return err
	}
	rec := &pendingRecord{Result: client.NewResult("requests"), Requests: []pendingItem{}}
	var plain []string
	for _, p := range items {
		rec.Requests = append(rec.Requests, pendingItem{p.kind, p.from, p.nick, p.group, p.offer.Name, p.offer.Count, p.offer.Bytes})
		who := client.Name(p.from, p.nick)
		switch p.kind {
		case "invite":
			plain = append(plain, fmt.Sprintf("invite to %s from %s", protocol.Escape(p.group), who))
		case "chat":
			plain = append(plain, "direct chat request from "+who)
		case "file":
			plain = append(plain, fmt.Sprintf("offer of %s from %s", client.OfferLabel(p.offer.Count, p.offer.Bytes, protocol.Escape(p.offer.Name)), who))
		default:
			plain = append(plain, "friend request from "+who)
		}
	}
	plain = append(plain, fmt.Sprintf("%d pending", len(items)))
	a.emit(ctx, rec, strings.Join(plain, "\n"))
	return nil
}

// /accept ID [#GROUP|chat|file] and /reject ID [#GROUP|chat|file]: answer
// the request from ID (a friend request, a group invite, a direct chat or a
// file offer; with several, the second word says which).
func (a *app) cmdAccept(ctx context.Context, args []string) error { return a.answer(ctx, true, args) }
func (a *app) cmdReject(ctx context.Context, args []string) error { return a.answer(ctx, false, args) }

func (a *app) answer(ctx context.Context, accept bool, args []string) error {
	verb, cmd := "ACCEPT", "/accept"
	if !accept {
		verb, cmd = "REJECT", "/reject"
	}
	u, err := a.peer(ctx, args[0])
	if err != nil {
		return err
	}
	from := u.ID
	group, kind := "", ""
	if len(args) > 1 {
		switch k := strings.ToLower(args[1]); k {
		case "chat", "file", "friend":
			kind = k
		default:
			if group, err = groupArg(args[1]); err != nil {
				return err
			}
			kind = "invite"
		}
	}
	items, err := a.pendingList(ctx)
	if err != nil {
		return err
	}
	var match []pending
	for _, p := range items {
		if p.from == from && (kind == "" || p.kind == kind) && (group == "" || strings.EqualFold(p.group, group)) {
			match = append(match, p)
		}
	}
	if len(match) == 0 && (kind == "" || kind == "file") {
		if found, err := a.answerOffline(ctx, accept, from); found || err != nil {
			return err
		}
	}
	switch {
	case len(match) == 0:
		return fmt.Errorf("nothing from %s waits for an answer", a.nameOf(from))
	case len(match) > 1:
		last := match[len(match)-1]
		which := last.kind
		if last.kind == "invite" {
			which = protocol.Escape(last.group)
		}
		return fmt.Errorf("several requests from %s: say which, e.g. %s %d %s", a.nameOf(from), cmd, from, which)
	}
	p := match[0]
	if p.kind == "chat" || p.kind == "file" {
		return a.answerOffer(ctx, accept, p.offer)
	}
	if p.kind == "invite" {
		if err := a.simple(ctx, u, p.group, verb, "invite", p.group); err != nil {
			return err
		}
		if accept {
			a.rememberGroup(p.group)
			a.setTarget(p.group)
		}
		return nil
	}
	return a.simple(ctx, u, "", verb, "friend", strconv.FormatInt(from, 10))
}

// /profile [set FIELD VALUE]
func (a *app) cmdProfile(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return a.cmdWho(ctx, []string{strconv.FormatInt(a.cl.Me().ID, 10)})
	}
	if strings.ToLower(args[0]) != "set" || len(args) < 3 {
		return errors.New("usage: /profile, or /profile set nick|sex|age|address|status VALUE")
	}
	field := strings.ToLower(args[1])
	if err := a.simple(ctx, client.User{}, "", "SET", field, args[2]); err != nil {
		return err
	}
	if field == "nick" {
		a.cl.Rename(args[2])
		a.mu.Lock()
		a.me = a.cl.Me()
		a.mu.Unlock()
	}
	return nil
}

// /passwd: the old password, then the new one twice; on a terminal asked
// without echo, piped read from the next three input lines.
func (a *app) cmdPasswd(ctx context.Context, args []string) error {
	ask := a.nextSecret
	if a.term != nil {
		ask = a.term.askPassword
	}
	if ask == nil {
		return errors.New("no way to ask for passwords")
	}
	old, err := ask("old password: ")
	if err != nil {
		return err
	}
	p1, err := ask("new password: ")
	if err != nil {
		return err
	}
	p2, err := ask("new password again: ")
	if err != nil {
		return err
	}
	if p1 != p2 {
		return errors.New("the two new passwords differ")
	}
	if err := protocol.ValidPassword(p1); err != nil {
		return err
	}
	if err := a.simple(ctx, client.User{}, "", "PASSWD", pctEscape(old), pctEscape(p1)); err != nil {
		return err
	}
	a.cfg.Password = p1
	return nil
}

// pctEscape writes a password as PASSWD wants it: %25 for '%', %20 for a space.
func pctEscape(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20").Replace(s)
}

package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"qchat/protocol"
)

// Register creates an account and returns its id.
func (c *Client) Register(ctx context.Context, nick, password string) (User, error) {
	if err := protocol.ValidNick(nick); err != nil {
		return User{}, err
	}
	if err := protocol.ValidPassword(password); err != nil {
		return User{}, err
	}
	r, err := c.Do(ctx, "REG", nick, password)
	if err != nil {
		return User{}, err
	}
	return parseUser(r.Text)
}

// Login logs in as user (an id or a nickname).
func (c *Client) Login(ctx context.Context, user, password string) (User, error) {
	if _, err := c.Do(ctx, "USER", user); err != nil {
		return User{}, err
	}
	r, err := c.Do(ctx, "PASS", password)
	if err != nil {
		return User{}, err
	}
	return c.loggedIn(r)
}

// loggedIn takes the 230 of a login (PASS or RESUME).
func (c *Client) loggedIn(r Reply) (User, error) {
	u, err := parseUser(r.Text)
	if err == nil {
		c.mu.Lock()
		c.me = u
		c.mu.Unlock()
		if p := c.opts.Peer; p != nil {
			p.SetMe(u.ID)
			// The key our direct links prove, for the server to pass to
			// our peers. Not waited for: the server takes lines in
			// order, so any later CHAT, FILE or ACCEPT comes after it,
			// and a server that refuses it refuses those too, saying why.
			c.Go("LINKKEY", []string{p.Fingerprint()}, func(Reply, error) {})
			// Our peer port (for peers to tell whether our NAT changed
			// it), our IPv6 endpoints for peers to dial first, and what
			// the server sees of us (to tell our NAT). Answered before
			// any later ticket, as LINKKEY.
			c.Go("ENDPOINTS", append([]string{"port=" + strconv.Itoa(p.Port())}, p.Endpoints6()...), func(r Reply, err error) {
				if f := strings.Fields(r.Text); err == nil && len(f) > 0 {
					c.mu.Lock()
					c.observed = f[0]
					c.mu.Unlock()
				}
			})
		}
	}
	return u, err
}

// parseUser reads "<id> <nick> ..." from a reply text.
func parseUser(text string) (User, error) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return User{}, fmt.Errorf("unexpected reply %q", protocol.Clip(text, 40))
	}
	id, ok := protocol.ParseID(f[0])
	if !ok {
		return User{}, fmt.Errorf("unexpected reply %q", protocol.Clip(text, 40))
	}
	return User{ID: id, Nick: f[1]}, nil
}

// Presence is one line of LIST: a user who is online.
type Presence struct {
	User
	State  string // online, away
	Status string // status text, may be empty
}

// List returns who is online.
func (c *Client) List(ctx context.Context) ([]Presence, error) {
	return c.Users(ctx, "LIST")
}

// Rename notes my new nickname after SET nick.
func (c *Client) Rename(nick string) {
	c.mu.Lock()
	c.me.Nick = nick
	c.mu.Unlock()
}

// Users runs a request whose answer is a list of users, one per line as
// "<id> <nick> <state> [<status>]": LIST, FRIENDS, FIND.
func (c *Client) Users(ctx context.Context, verb string, args ...string) ([]Presence, error) {
	r, err := c.Do(ctx, verb, args...)
	if err != nil {
		return nil, err
	}
	out := make([]Presence, 0, len(r.Lines))
	for _, l := range r.Lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 3 {
			continue
		}
		id, ok := protocol.ParseID(f[0])
		if !ok {
			continue
		}
		p := Presence{User: User{id, f[1]}, State: f[2]}
		if len(f) == 4 {
			p.Status = f[3]
		}
		out = append(out, p)
	}
	return out, nil
}

// Info returns a user's public profile as ordered key/value pairs.
func (c *Client) Info(ctx context.Context, who string) ([][2]string, error) {
	r, err := c.Do(ctx, "INFO", who)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(r.Lines))
	for _, l := range r.Lines {
		k, v, _ := strings.Cut(l, " ")
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// Sent is the server's answer to a message: its id, whether it was
// "delivered" (acknowledged by the recipient) or "stored" (safe on disk),
// the recipient's id, the server's time of the message, and the receipt
// that came with it, if any.
type Sent struct {
	ID     int64
	Status string // "delivered" or "stored"
	To     int64  // the recipient, 0 for a group message
	Group  string // "#name" for a group message
	Time   time.Time
	Mark   string // "", MarkShown or MarkRead: the recipient's client showed it, or the recipient read it
}

// Conversation is the history conversation the message belongs to.
func (s Sent) Conversation() string {
	if s.Group != "" {
		return s.Group
	}
	return strconv.FormatInt(s.To, 10)
}

// Send sends a private message (to a user) or a group message (to
// "#name") and waits until the server says it is safe.
func (c *Client) Send(ctx context.Context, to, text string) (Sent, error) {
	if err := protocol.CheckText(text, protocol.MaxText); err != nil {
		return Sent{}, err
	}
	r, err := c.Do(ctx, "MSG", to, text)
	if err != nil {
		return Sent{}, err
	}
	return parseSent(r.Text)
}

// parseSent reads "<msgid> delivered|stored <to|#group> <time>[ shown|read]".
func parseSent(text string) (Sent, error) {
	f := strings.Fields(text)
	bad := fmt.Errorf("unexpected reply %q", protocol.Clip(text, 60))
	if len(f) < 4 {
		return Sent{}, bad
	}
	id, ok1 := protocol.ParseID(f[0])
	to, ok2 := protocol.ParseID(f[2])
	group := ""
	if strings.HasPrefix(f[2], "#") {
		group, ok2 = f[2], true
	}
	t, err := protocol.ParseTime(f[3])
	if !ok1 || !ok2 || err != nil {
		return Sent{}, bad
	}
	sent := Sent{ID: id, Status: f[1], To: to, Group: group, Time: t}
	if len(f) > 4 && (f[4] == MarkShown || f[4] == MarkRead) {
		sent.Mark = f[4]
	}
	return sent, nil
}

// SendAsync sends a message without waiting; fn hears the outcome from the
// read loop and must not block.
func (c *Client) SendAsync(to, text string, fn func(Sent, error)) error {
	return c.Go("MSG", []string{to, text}, func(r Reply, err error) {
		if err != nil {
			fn(Sent{}, err)
			return
		}
		fn(parseSent(r.Text))
	})
}

// Ack tells the server that messages were shown or saved. It does not wait.
func (c *Client) Ack(ids ...int64) error {
	for len(ids) > 0 {
		n := min(len(ids), 512)
		var b strings.Builder
		for i, id := range ids[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(id, 10))
		}
		if err := c.send("ACK", b.String()); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// AckUpTo acknowledges every durable event this connection received with
// an id up to id: ACK ..<id> (PROTOCOL.md section 6), or ACK <id> to a
// server that does not take it. It does not wait.
func (c *Client) AckUpTo(id int64) error {
	if !c.ackTo {
		return c.Ack(id)
	}
	b := make([]byte, 0, 32)
	b = append(b, "ACK .."...)
	b = strconv.AppendInt(b, id, 10)
	return c.out.Write(append(b, '\n'))
}

// Message is one durable event the client must acknowledge: a private
// message (MSG), a group message (GMSG), a request (REQUEST: Text is
// "friend" or "invite") or a notice (NOTICE: Text says what happened).
type Message struct {
	Kind     string // MSG, GMSG, REQUEST or NOTICE
	ID       int64
	From     int64
	FromNick string
	Time     time.Time
	Group    string // "#name" for GMSG, invites and group notices
	Text     string
	// File is the offline file a notice is about (offline-taken,
	// offline-refused, offline-expired).
	File *OfflineNotice
}

// OfflineNotice is the file of an offline-* notice.
type OfflineNotice struct {
	ID   int64
	Name string
}

// IsChat reports whether m is a conversation message (kept in history).
func (m Message) IsChat() bool { return m.Kind == "MSG" || m.Kind == "GMSG" }

// Conversation is the history conversation of a message: the peer's id,
// or the group.
func (m Message) Conversation() string {
	if m.Group != "" && m.Kind == "GMSG" {
		return m.Group
	}
	return strconv.FormatInt(m.From, 10)
}

// IsAckable reports whether an event kind is a durable one to acknowledge.
func IsAckable(kind string) bool {
	return kind == "MSG" || kind == "GMSG" || kind == "REQUEST" || kind == "NOTICE"
}

// ParseMessage reads a MSG, GMSG, REQUEST or NOTICE event.
func ParseMessage(l protocol.Line) (Message, error) {
	if !IsAckable(l.Kind) || len(l.Args) < 5 {
		return Message{}, fmt.Errorf("not a message event")
	}
	id, ok1 := protocol.ParseID(l.Args[0])
	from, ok2 := protocol.ParseID(l.Args[1])
	t, err := protocol.ParseTime(l.Args[3])
	if !ok1 || !ok2 || err != nil {
		return Message{}, fmt.Errorf("malformed %s event", l.Kind)
	}
	m := Message{Kind: l.Kind, ID: id, From: from, FromNick: l.Args[2], Time: t, Text: l.Args[4]}
	switch {
	case l.Kind == "GMSG" && len(l.Args) == 6:
		m.Group, m.Text = l.Args[4], l.Args[5]
	case l.Kind == "GMSG":
		return Message{}, fmt.Errorf("malformed GMSG event")
	case l.Kind == "NOTICE" && strings.HasPrefix(m.Text, "offline-"):
		// <file-id> <name>
		id, name, _ := strings.Cut(l.Args[len(l.Args)-1], " ")
		fid, ok := protocol.ParseID(id)
		if len(l.Args) != 6 || !ok || name == "" {
			return Message{}, fmt.Errorf("malformed NOTICE event")
		}
		m.File = &OfflineNotice{ID: fid, Name: name}
	case len(l.Args) > 5:
		m.Group = l.Args[5]
	}
	return m, nil
}

// PresenceEvent reads a PRESENCE event.
func PresenceEvent(l protocol.Line) (Presence, error) {
	if l.Kind != "PRESENCE" || len(l.Args) < 3 {
		return Presence{}, fmt.Errorf("not a PRESENCE event")
	}
	id, ok := protocol.ParseID(l.Args[0])
	if !ok {
		return Presence{}, fmt.Errorf("malformed PRESENCE event")
	}
	p := Presence{User: User{id, l.Args[1]}, State: l.Args[2]}
	if len(l.Args) > 3 {
		p.Status = l.Args[3]
	}
	return p, nil
}

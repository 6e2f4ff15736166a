package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"qchat/protocol"
)

// Printer writes results and events for chat and recv: plain lines, or one
// JSON object per line (each with a "type"). Every string a peer controls
// is escaped in plain output, so no peer can drive the terminal; JSON
// output escapes control characters, and DEL, C1 and bidi characters too
// (protocol.SafeJSON). Safe for concurrent
// use: each record is one write.
type Printer struct {
	mu   sync.Mutex
	w    io.Writer
	JSON bool
	// Above, when set, prints a plain line instead of w (the terminal's
	// print-above-the-prompt).
	Above func(line string)
	Now   func() time.Time // for tests; time.Now by default
}

// NewPrinter returns a printer on w.
func NewPrinter(w io.Writer, jsonOut bool) *Printer {
	return &Printer{w: w, JSON: jsonOut, Now: time.Now}
}

// Emit prints one record: obj as JSON, or plain (already safe) as text
// lines. It returns what it printed, without the final line end.
func (p *Printer) Emit(obj any, plain string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		if obj == nil {
			// A line for people (what is going on): a note for scripts.
			obj = NoteRecord{Type: "note", Text: plain}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(obj); err != nil {
			buf.Reset()
			fmt.Fprintf(&buf, "{\"type\":\"error\",\"error\":%q}\n", err.Error())
		}
		b := protocol.SafeJSON(buf.Bytes())
		p.w.Write(b)
		return string(bytes.TrimSuffix(b, []byte{'\n'}))
	}
	if p.Above != nil {
		for _, l := range strings.Split(plain, "\n") {
			p.Above(l)
		}
		return plain
	}
	io.WriteString(p.w, plain+"\n")
	return plain
}

// JSON records. Field names are stable; PROTOCOL.md and the README list them.
type (
	MsgRecord struct {
		Type     string `json:"type"` // "msg", or "gmsg" for a group message
		ID       int64  `json:"id"`
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		To       int64  `json:"to,omitempty"`
		Group    string `json:"group,omitempty"` // "#name", for "gmsg"
		Text     string `json:"text"`
		Time     string `json:"time"`
	}
	RequestRecord struct {
		Type     string `json:"type"` // "request"
		ID       int64  `json:"id"`
		Kind     string `json:"kind"` // "friend" or "invite"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Group    string `json:"group,omitempty"` // for "invite"
		Time     string `json:"time"`
	}
	NoticeRecord struct {
		Type     string `json:"type"` // "notice"
		ID       int64  `json:"id"`
		What     string `json:"what"` // friend-accepted, friend-rejected, friend-removed, invite-accepted, invite-rejected, kicked
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Group    string `json:"group,omitempty"`
		Time     string `json:"time"`
	}
	NudgeRecord struct {
		Type     string `json:"type"` // "nudge"
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		Time     string `json:"time"`
	}
	PresenceRecord struct {
		Type   string `json:"type"` // "presence"
		ID     int64  `json:"id"`
		Nick   string `json:"nick"`
		State  string `json:"state"`
		Status string `json:"status,omitempty"`
	}
	ErrorRecord struct {
		Type    string `json:"type"` // "error"
		Command string `json:"command,omitempty"`
		Code    int    `json:"code,omitempty"`
		Error   string `json:"error"`
	}
	NoteRecord struct {
		Type string `json:"type"` // "note"
		Text string `json:"text"` // what a person would read (escaped for a terminal)
	}
	ServerRecord struct {
		Type string `json:"type"` // "server"
		Code int    `json:"code"`
		Text string `json:"text"`
	}
	ByeRecord struct {
		Type   string `json:"type"` // "bye"
		Reason string `json:"reason"`
		Text   string `json:"text"`
	}
)

// Message prints an incoming message, request or notice; to is my id.
func (p *Printer) Message(m Message, to int64) string {
	who := fmt.Sprintf("%s (%d)", protocol.Escape(m.FromNick), m.From)
	group := protocol.Escape(m.Group)
	at := protocol.FormatTime(m.Time)
	switch m.Kind {
	case "GMSG":
		return p.Emit(MsgRecord{Type: "gmsg", ID: m.ID, From: m.From, FromNick: m.FromNick, Group: m.Group, Text: m.Text, Time: at},
			fmt.Sprintf("%s %s %s: %s", p.Stamp(m.Time), group, who, protocol.Escape(m.Text)))
	case "REQUEST":
		plain := fmt.Sprintf("* %s wants to be your friend: /accept %d or /reject %d", who, m.From, m.From)
		if m.Text == "invite" {
			plain = fmt.Sprintf("* %s invites you to %s: /accept %d or /reject %d", who, group, m.From, m.From)
		}
		return p.Emit(RequestRecord{Type: "request", ID: m.ID, Kind: m.Text, From: m.From, FromNick: m.FromNick, Group: m.Group, Time: at}, plain)
	case "NOTICE":
		plain := map[string]string{
			"friend-accepted": "* %[1]s accepted your friend request",
			"friend-rejected": "* %[1]s refused your friend request",
			"friend-removed":  "* %[1]s removed you from their friends",
			"invite-accepted": "* %[1]s accepted your invite and joined %[2]s",
			"invite-rejected": "* %[1]s refused your invite to %[2]s",
			"kicked":          "* %[1]s removed you from %[2]s",
		}[m.Text]
		if plain == "" {
			plain = "* %[1]s: %[3]s %[2]s"
		}
		return p.Emit(NoticeRecord{Type: "notice", ID: m.ID, What: m.Text, From: m.From, FromNick: m.FromNick, Group: m.Group, Time: at},
			strings.TrimSpace(fmt.Sprintf(plain, who, group, protocol.Escape(m.Text))))
	}
	return p.Emit(MsgRecord{Type: "msg", ID: m.ID, From: m.From, FromNick: m.FromNick, To: to, Text: m.Text, Time: at},
		fmt.Sprintf("%s %s: %s", p.Stamp(m.Time), who, protocol.Escape(m.Text)))
}

// Nudge prints a nudge: on a terminal (bell set) it rings the bell; the
// shake marker shows everywhere.
func (p *Printer) Nudge(from int64, nick string, t time.Time, bell bool) string {
	plain := fmt.Sprintf("%s ~~~ %s (%d) nudged you! ~~~", p.Stamp(t), protocol.Escape(nick), from)
	if bell {
		plain = "\a" + plain
	}
	return p.Emit(NudgeRecord{Type: "nudge", From: from, FromNick: nick, Time: protocol.FormatTime(t)}, plain)
}

// Stamp is the time of a message as shown: the time of day, with the date
// when it is not today.
func (p *Printer) Stamp(t time.Time) string {
	t = t.Local()
	now := p.Now().Local()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return "[" + t.Format("15:04:05") + "]"
	}
	return "[" + t.Format("2006-01-02 15:04") + "]"
}

// Presence prints a presence change.
func (p *Printer) Presence(pr Presence) string {
	plain := fmt.Sprintf("* %s (%d) is %s", protocol.Escape(pr.Nick), pr.ID, protocol.Escape(pr.State))
	if pr.Status != "" {
		plain += ": " + protocol.Escape(pr.Status)
	}
	return p.Emit(PresenceRecord{Type: "presence", ID: pr.ID, Nick: pr.Nick, State: pr.State, Status: pr.Status}, plain)
}

// Bye prints why the server closed the connection.
func (p *Printer) Bye(l protocol.Line) string {
	reason, text := l.Args[0], l.Args[0]
	if len(l.Args) > 1 {
		text = l.Args[1]
	}
	return p.Emit(ByeRecord{Type: "bye", Reason: reason, Text: text},
		fmt.Sprintf("* disconnected by the server: %s (%s)", protocol.Escape(text), protocol.Escape(reason)))
}

// Notice prints a line the server sent outside any request (an untagged reply).
func (p *Printer) Notice(l protocol.Line) string {
	return p.Emit(ServerRecord{Type: "server", Code: l.Code, Text: l.Text},
		fmt.Sprintf("* server: %d %s", l.Code, protocol.Escape(l.Text)))
}

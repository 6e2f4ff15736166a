package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
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
// lines. A JSON object without a time gets the time of now; nil is a
// note (a line for people) under JSON. It returns what it printed,
// without the final line end.
func (p *Printer) Emit(obj any, plain string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		if obj == nil {
			obj = &NoteRecord{Head: NewHead("note"), Text: plain}
		}
		if h, ok := obj.(header); ok && h.head().Time == "" {
			h.head().Time = protocol.FormatTime(p.Now())
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(obj); err != nil {
			buf.Reset()
			fmt.Fprintf(&buf, "{\"type\":\"error\",\"time\":%q,\"code\":%q,\"message\":%q}\n",
				protocol.FormatTime(p.Now()), CodeFailed, err.Error())
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

// Name shows a user for people: "bob (1001)", or "1001" while the
// nickname is not known. Safe for a terminal.
func Name(id int64, nick string) string {
	if nick == "" {
		return strconv.FormatInt(id, 10)
	}
	return protocol.Escape(nick) + " (" + strconv.FormatInt(id, 10) + ")"
}

// Message prints an incoming message, request or notice; to is my id.
func (p *Printer) Message(m Message, to User) string {
	who := Name(m.From, m.FromNick)
	group := protocol.Escape(m.Group)
	switch m.Kind {
	case "GMSG":
		return p.Emit(&MsgRecord{Head: NewHeadAt("gmsg", m.Time), ID: m.ID, From: m.From, FromNick: m.FromNick, Group: m.Group, Text: m.Text},
			fmt.Sprintf("%s %s %s: %s", p.Stamp(m.Time), group, who, protocol.Escape(m.Text)))
	case "REQUEST":
		plain := fmt.Sprintf("* %s wants to be your friend: /accept %d or /reject %d", who, m.From, m.From)
		if m.Text == "invite" {
			plain = fmt.Sprintf("* %s invites you to %s: /accept %d or /reject %d", who, group, m.From, m.From)
		}
		return p.Emit(&RequestRecord{Head: NewHeadAt("request", m.Time), ID: m.ID, Kind: m.Text, From: m.From, FromNick: m.FromNick, Group: m.Group}, plain)
	case "NOTICE":
		plain := map[string]string{
			"friend-accepted": "* %[1]s accepted your friend request",
			"friend-rejected": "* %[1]s refused your friend request",
			"friend-removed":  "* %[1]s removed you from their friends",
			"invite-accepted": "* %[1]s accepted your invite and joined %[2]s",
			"invite-rejected": "* %[1]s refused your invite to %[2]s",
			"kicked":          "* %[1]s removed you from %[2]s",
		}[m.Text]
		if m.File != nil {
			file := protocol.Escape(m.File.Name)
			plain = map[string]string{
				"offline-taken":   "* %[1]s took " + file + ", the file you left on the server",
				"offline-refused": "* %[1]s refused " + file + ", the file you left on the server: it is deleted",
				"offline-expired": "* " + file + ", the file you left on the server for %[1]s, expired before they took it: it is deleted",
			}[m.Text]
		}
		if plain == "" {
			plain = "* %[1]s: %[3]s %[2]s"
		}
		return p.Emit(&NoticeRecord{Head: NewHeadAt("notice", m.Time), ID: m.ID, What: m.Text, From: m.From, FromNick: m.FromNick, Group: m.Group, FileID: fileID(m.File), Name: fileName(m.File)},
			strings.TrimSpace(fmt.Sprintf(plain, who, group, protocol.Escape(m.Text))))
	}
	return p.Emit(&MsgRecord{Head: NewHeadAt("msg", m.Time), ID: m.ID, From: m.From, FromNick: m.FromNick, To: to.ID, ToNick: to.Nick, Text: m.Text},
		fmt.Sprintf("%s %s: %s", p.Stamp(m.Time), who, protocol.Escape(m.Text)))
}

// Nudge prints a nudge: on a terminal (bell set) it rings the bell; the
// shake marker shows everywhere.
func (p *Printer) Nudge(from int64, nick string, t time.Time, bell bool) string {
	plain := fmt.Sprintf("%s ~~~ %s nudged you! ~~~", p.Stamp(t), Name(from, nick))
	if bell {
		plain = "\a" + plain
	}
	return p.Emit(&NudgeRecord{Head: NewHeadAt("nudge", t), From: from, FromNick: nick}, plain)
}

// Stamp is the time of a message as shown, in brackets: the time of day
// for today ("[14:02:05]"), the day and time in the six days before
// ("[Mon 14:02]"), the date and time before that, or in the future
// ("[2026-11-24 14:02]"), so that last week never reads like this morning.
func (p *Printer) Stamp(t time.Time) string {
	t = t.Local()
	now := p.Now().Local()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	switch {
	case !t.Before(today) && !t.After(now.Add(time.Minute)) && t.Before(today.AddDate(0, 0, 1)):
		return "[" + t.Format("15:04:05") + "]"
	case !t.Before(today.AddDate(0, 0, -6)) && t.Before(today):
		return "[" + t.Format("Mon 15:04") + "]"
	}
	return "[" + t.Format("2006-01-02 15:04") + "]"
}

// Presence prints a presence change.
func (p *Printer) Presence(pr Presence) string {
	plain := fmt.Sprintf("* %s is %s", Name(pr.ID, pr.Nick), protocol.Escape(pr.State))
	if pr.Status != "" {
		plain += ": " + protocol.Escape(pr.Status)
	}
	return p.Emit(&PresenceRecord{Head: NewHead("presence"), ID: pr.ID, Nick: pr.Nick, State: pr.State, Status: pr.Status}, plain)
}

// Bye prints why the server closed the connection.
func (p *Printer) Bye(l protocol.Line) string {
	reason, text := l.Args[0], l.Args[0]
	if len(l.Args) > 1 {
		text = l.Args[1]
	}
	return p.Emit(&ByeRecord{Head: NewHead("bye"), Reason: reason, Text: text},
		fmt.Sprintf("* disconnected by the server: %s (%s)", protocol.Escape(text), protocol.Escape(reason)))
}

// Notice prints a line the server sent outside any request (an untagged reply).
func (p *Printer) Notice(l protocol.Line) string {
	return p.Emit(&ServerRecord{Head: NewHead("server"), Code: l.Code, Text: l.Text},
		fmt.Sprintf("* server: %d %s", l.Code, protocol.Escape(l.Text)))
}

func fileID(f *OfflineNotice) int64 {
	if f == nil {
		return 0
	}
	return f.ID
}

func fileName(f *OfflineNotice) string {
	if f == nil {
		return ""
	}
	return f.Name
}

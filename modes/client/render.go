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
		Type     string `json:"type"` // "msg"
		ID       int64  `json:"id"`
		From     int64  `json:"from"`
		FromNick string `json:"from_nick"`
		To       int64  `json:"to,omitempty"`
		Text     string `json:"text"`
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
	ByeRecord struct {
		Type   string `json:"type"` // "bye"
		Reason string `json:"reason"`
		Text   string `json:"text"`
	}
)

// Message prints an incoming message.
func (p *Printer) Message(m Message, to int64) string {
	return p.Emit(MsgRecord{Type: "msg", ID: m.ID, From: m.From, FromNick: m.FromNick, To: to, Text: m.Text, Time: protocol.FormatTime(m.Time)},
		fmt.Sprintf("%s %s (%d): %s", p.Stamp(m.Time), protocol.Escape(m.FromNick), m.From, protocol.Escape(m.Text)))
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
	plain := fmt.Sprintf("* %s (%d) is %s", protocol.Escape(pr.Nick), pr.ID, pr.State)
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
	return p.Emit(ErrorRecord{Type: "notice", Code: l.Code, Error: l.Text},
		fmt.Sprintf("* server: %d %s", l.Code, protocol.Escape(l.Text)))
}

package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
	"qchat/xfer"
)

// Hostile text a peer can put in a message, a status, a file name...
const (
	ansi    = "\x1b[31mred\x1b[0m\x1b]0;pwned\x07"
	bidi    = "abc\u202edcba\u2066x\u2069"
	c1      = "\u009b31m\u0085"
	hostile = ansi + " " + bidi + " " + c1 + " tab\there del\x7f"
)

// printed is one record through a Printer, plain and JSON.
type printed struct {
	name   string
	typ    string   // the JSON "type"
	fields []string // every field the README's --json table lists for it
	// plain must hold these (visible escapes of the hostile text)
	plain []string
	// json must decode to these values
	values map[string]any
	emit   func(p *Printer) string
}

var (
	msgTime   = time.Date(2026, 11, 22, 10, 0, 5, 120e6, time.UTC)
	hostileID = User{ID: 1001, Nick: "bob" + ansi + bidi}
	alice     = User{ID: 1000, Nick: "alice"}
)

func hostileRecords() []printed {
	escaped := protocol.Escape(hostile)
	return []printed{
		{
			name: "msg", typ: "msg", fields: []string{"id", "from", "from_nick", "to", "to_nick", "text", "time"},
			plain:  []string{escaped, `bob\x1b[31m`, "(1001)"},
			values: map[string]any{"id": 7.0, "from": 1001.0, "from_nick": hostileID.Nick, "to": 1000.0, "to_nick": "alice", "text": hostile, "time": "2026-11-22T10:00:05.120Z"},
			emit: func(p *Printer) string {
				return p.Message(Message{Kind: "MSG", ID: 7, From: 1001, FromNick: hostileID.Nick, Time: msgTime, Text: hostile}, alice)
			},
		},
		{
			name: "gmsg", typ: "gmsg", fields: []string{"id", "from", "from_nick", "group", "text", "time"},
			plain:  []string{escaped, "#dev"},
			values: map[string]any{"id": 8.0, "group": "#dev", "text": hostile},
			emit: func(p *Printer) string {
				return p.Message(Message{Kind: "GMSG", ID: 8, From: 1001, FromNick: hostileID.Nick, Time: msgTime, Group: "#dev", Text: hostile}, alice)
			},
		},
		{
			name: "request friend", typ: "request", fields: []string{"id", "kind", "from", "from_nick", "time"},
			plain:  []string{"wants to be your friend", "/accept 1001"},
			values: map[string]any{"kind": "friend", "from": 1001.0},
			emit: func(p *Printer) string {
				return p.Message(Message{Kind: "REQUEST", ID: 9, From: 1001, FromNick: hostileID.Nick, Time: msgTime, Text: "friend"}, alice)
			},
		},
		{
			name: "request invite", typ: "request", fields: []string{"id", "kind", "from", "from_nick", "group", "time"},
			plain:  []string{"invites you to #dev", "/accept 1001"},
			values: map[string]any{"kind": "invite", "group": "#dev"},
			emit: func(p *Printer) string {
				return p.Message(Message{Kind: "REQUEST", ID: 10, From: 1001, FromNick: hostileID.Nick, Time: msgTime, Group: "#dev", Text: "invite"}, alice)
			},
		},
		{
			name: "notice kicked", typ: "notice", fields: []string{"id", "what", "from", "from_nick", "group", "time"},
			plain:  []string{"removed you from #dev"},
			values: map[string]any{"what": "kicked", "group": "#dev"},
			emit: func(p *Printer) string {
				return p.Message(Message{Kind: "NOTICE", ID: 11, From: 1001, FromNick: hostileID.Nick, Time: msgTime, Group: "#dev", Text: "kicked"}, alice)
			},
		},
		{
			name: "notice unknown", typ: "notice", fields: []string{"id", "what", "from", "from_nick", "time"},
			plain:  []string{escaped},
			values: map[string]any{"what": hostile},
			emit: func(p *Printer) string {
				return p.Message(Message{Kind: "NOTICE", ID: 12, From: 1001, FromNick: hostileID.Nick, Time: msgTime, Text: hostile}, alice)
			},
		},
		{
			name: "nudge", typ: "nudge", fields: []string{"from", "from_nick", "time"},
			plain:  []string{"nudged you", `bob\x1b[31m`},
			values: map[string]any{"from": 1001.0, "from_nick": hostileID.Nick},
			emit:   func(p *Printer) string { return p.Nudge(1001, hostileID.Nick, msgTime, false) },
		},
		{
			name: "presence", typ: "presence", fields: []string{"id", "nick", "state", "status", "time"},
			plain:  []string{"is away: " + escaped},
			values: map[string]any{"id": 1001.0, "nick": hostileID.Nick, "state": "away", "status": hostile},
			emit: func(p *Printer) string {
				return p.Presence(Presence{User: hostileID, State: "away", Status: hostile})
			},
		},
		{
			name: "bye", typ: "bye", fields: []string{"reason", "text", "time"},
			plain:  []string{escaped, "(takeover)"},
			values: map[string]any{"reason": "takeover", "text": hostile},
			emit: func(p *Printer) string {
				return p.Bye(protocol.Line{Kind: "BYE", Args: []string{"takeover", hostile}})
			},
		},
		{
			name: "offer chat", typ: "offer", fields: []string{"ticket", "kind", "from", "from_nick", "time"},
			plain:  []string{"wants a direct chat", "/accept 1001"},
			values: map[string]any{"ticket": "t1", "kind": "chat", "from": 1001.0, "time": "2026-11-22T10:00:05.120Z"},
			emit: func(p *Printer) string {
				return p.Offer(OfferEvent{Ticket: "t1", From: 1001, FromNick: hostileID.Nick, Time: msgTime, Purpose: "chat"})
			},
		},
		{
			name: "offer file", typ: "offer", fields: []string{"ticket", "kind", "from", "from_nick", "files", "size", "name", "time"},
			plain:  []string{escaped + " (2 files, 2.0 KiB)", "/reject 1001"},
			values: map[string]any{"kind": "file", "files": 2.0, "size": 2048.0, "name": hostile},
			emit: func(p *Printer) string {
				return p.Offer(OfferEvent{Ticket: "t2", From: 1001, FromNick: hostileID.Nick, Time: msgTime, Purpose: "file", Count: 2, Bytes: 2048, Name: hostile})
			},
		},
		{
			name: "cancel timeout", typ: "cancel", fields: []string{"ticket", "kind", "from", "from_nick", "reason", "time"},
			plain:  []string{"the offer of " + escaped, "timed out"},
			values: map[string]any{"ticket": "t2", "reason": "timeout"},
			emit: func(p *Printer) string {
				return p.Cancel(OfferEvent{Ticket: "t2", From: 1001, FromNick: hostileID.Nick, Purpose: "file", Name: hostile}, "timeout")
			},
		},
		{
			name: "cancel gone", typ: "cancel", fields: []string{"ticket", "kind", "from", "from_nick", "reason", "time"},
			plain:  []string{"the direct chat request", "withdrawn"},
			values: map[string]any{"reason": "gone"},
			emit: func(p *Printer) string {
				return p.Cancel(OfferEvent{Ticket: "t1", From: 1001, FromNick: hostileID.Nick, Purpose: "chat"}, "gone")
			},
		},
		{
			name: "cancel unknown reason", typ: "cancel", fields: []string{"ticket", "kind", "from", "from_nick", "reason", "time"},
			plain:  []string{"ended: " + escaped},
			values: map[string]any{"reason": hostile},
			emit: func(p *Printer) string {
				return p.Cancel(OfferEvent{Ticket: "t1", From: 1001, FromNick: hostileID.Nick, Purpose: "chat"}, hostile)
			},
		},
		{
			name: "link", typ: "link", fields: []string{"kind", "peer", "peer_nick", "path", "via", "time"},
			plain:  []string{"relay", escaped, `bob\x1b[31m`, "(1001)"},
			values: map[string]any{"kind": "file", "peer": 1001.0, "peer_nick": hostileID.Nick, "path": "relay", "via": hostile},
			emit: func(p *Printer) string {
				return p.Link("file", hostileID, &xfer.Link{Path: "relay", Via: hostile, Peer: 1001}, xfer.NATPortKept)
			},
		},
		{
			name: "file", typ: "file", fields: []string{"from", "from_nick", "name", "size", "blake3", "path", "bytes", "resumed_from", "via"},
			plain:  []string{"received " + escaped, "resumed at 1.0 KiB"},
			values: map[string]any{"from": 1001.0, "name": hostile, "size": 4096.0, "bytes": 3072.0, "resumed_from": 1024.0, "via": "direct"},
			emit: func(p *Printer) string {
				return p.FileReceived(hostileID, xfer.FileResult{Name: hostile, Path: "a/b.txt", Size: 4096, Resumed: 1024, Moved: 3072, Hash: strings.Repeat("ab", 32)}, "/tmp/in"+ansi, "direct")
			},
		},
		{
			name: "file_sent", typ: "file_sent", fields: []string{"to", "name", "size", "blake3", "bytes", "resumed_from", "via"},
			plain:  []string{"sent " + escaped},
			values: map[string]any{"to": 1001.0, "to_nick": hostileID.Nick, "name": hostile, "size": 10.0, "bytes": 10.0, "resumed_from": 0.0},
			emit: func(p *Printer) string {
				return p.FileSent(hostileID, xfer.FileResult{Name: hostile, Size: 10, Moved: 10, Hash: strings.Repeat("cd", 32)}, "relay")
			},
		},
		{
			name: "file_error", typ: "file_error", fields: []string{"peer", "peer_nick", "name", "message", "time"},
			plain:  []string{escaped},
			values: map[string]any{"peer": 1001.0, "peer_nick": hostileID.Nick, "name": hostile, "message": "bad: " + hostile},
			emit: func(p *Printer) string {
				return p.FileFailed(hostileID, hostile, errors.New("bad: "+hostile))
			},
		},
		{
			name: "direct", typ: "direct", fields: []string{"id", "from", "from_nick", "text", "time"},
			plain:  []string{"[direct]: " + escaped},
			values: map[string]any{"id": -5.0, "from": 1001.0, "text": hostile, "time": "2026-11-22T10:00:05.120Z"},
			emit: func(p *Printer) string {
				return p.Direct(hostileID, xfer.DirectMessage{ID: -5, Time: msgTime.In(time.FixedZone("x", 3600)), Text: hostile})
			},
		},
	}
}

func testPrinter(w *bytes.Buffer, jsonOut bool) *Printer {
	p := NewPrinter(w, jsonOut)
	p.Now = func() time.Time { return msgTime }
	return p
}

func TestPrinterPlainEscapesHostileText(t *testing.T) {
	for _, rec := range hostileRecords() {
		t.Run(rec.name, func(t *testing.T) {
			var buf bytes.Buffer
			got := rec.emit(testPrinter(&buf, false))
			if buf.String() != got+"\n" {
				t.Errorf("printed %q, returned %q", buf.String(), got)
			}
			if strings.Contains(got, "\n") {
				t.Errorf("one record printed more than one line: %q", got)
			}
			if why := fakeserver.TerminalUnsafe(got); why != "" {
				t.Errorf("plain output %q: %s", got, why)
			}
			for _, want := range rec.plain {
				if !strings.Contains(got, want) {
					t.Errorf("plain output %q does not hold %q", got, want)
				}
			}
		})
	}
}

func TestPrinterJSONRecords(t *testing.T) {
	for _, rec := range hostileRecords() {
		t.Run(rec.name, func(t *testing.T) {
			var buf bytes.Buffer
			got := rec.emit(testPrinter(&buf, true))
			out := buf.String()
			if out != got+"\n" || strings.Count(out, "\n") != 1 {
				t.Fatalf("want one JSON line, printed %q, returned %q", out, got)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("not valid JSON: %q", got)
			}
			if strings.ContainsRune(out, 0x1b) {
				t.Errorf("raw ESC in JSON output %q", out)
			}
			if why := fakeserver.TerminalUnsafe(got); why != "" {
				t.Errorf("JSON output %q: %s", got, why)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatal(err)
			}
			if m["type"] != rec.typ {
				t.Errorf("type %v, want %q in %s", m["type"], rec.typ, got)
			}
			for _, f := range rec.fields {
				if _, ok := m[f]; !ok {
					t.Errorf("field %q missing from %s", f, got)
				}
			}
			for k, v := range rec.values {
				if m[k] != v {
					t.Errorf("%s = %#v, want %#v", k, m[k], v)
				}
			}
			if tm, ok := m["time"].(string); ok {
				if _, err := time.Parse(time.RFC3339, tm); err != nil || !strings.HasSuffix(tm, "Z") {
					t.Errorf("time %q is not RFC 3339 UTC", tm)
				}
			}
		})
	}
}

// The README: "control and bidi characters are written as \u escapes".
func TestPrinterJSONEscapesAsUnicode(t *testing.T) {
	var buf bytes.Buffer
	p := testPrinter(&buf, true)
	got := p.Message(Message{Kind: "MSG", ID: 7, From: 1001, FromNick: "bob", Time: msgTime, Text: hostile}, alice)
	for _, want := range []string{`\u001b[31mred`, `\u202e`, `\u2066`, `\u009b`, `\u0085`, `\u007f`, `\u0007`, `\t`} {
		if !strings.Contains(got, want) {
			t.Errorf("JSON %s does not hold %s", got, want)
		}
	}
	// Chinese and emoji pass unchanged, and HTML is not escaped.
	buf.Reset()
	got = p.Message(Message{Kind: "MSG", ID: 8, From: 1001, FromNick: "小明", Time: msgTime, Text: "你好 🌏 <b>&"}, alice)
	if !strings.Contains(got, `"text":"你好 🌏 <b>&"`) || !strings.Contains(got, `"from_nick":"小明"`) {
		t.Errorf("JSON %s: text changed", got)
	}
}

func TestPrinterNotice(t *testing.T) {
	l := line(t, "421 server shutting down "+ansi)
	var buf bytes.Buffer
	got := testPrinter(&buf, false).Notice(l)
	if !strings.HasPrefix(got, "* server: 421 ") || fakeserver.TerminalUnsafe(got) != "" {
		t.Errorf("Notice plain = %q", got)
	}
	buf.Reset()
	got = testPrinter(&buf, true).Notice(l)
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil || m["type"] != "server" || strings.ContainsRune(got, 0x1b) {
		t.Errorf("Notice JSON = %q (%v)", got, err)
	}
	if m["code"] != 421.0 || !strings.Contains(fmt.Sprint(m["text"]), "shutting down") {
		t.Errorf("Notice JSON = %q: code and text lost", got)
	}
}

func TestPrinterNudgeBell(t *testing.T) {
	var buf bytes.Buffer
	p := testPrinter(&buf, false)
	if got := p.Nudge(1001, "bob", msgTime, true); !strings.HasPrefix(got, "\a") || strings.Count(got, "\a") != 1 {
		t.Errorf("Nudge with bell = %q, want one leading BEL", got)
	}
	if got := p.Nudge(1001, "bob\a", msgTime, false); strings.Contains(got, "\a") {
		t.Errorf("Nudge without bell = %q: rings anyway", got)
	}
	buf.Reset()
	if got := testPrinter(&buf, true).Nudge(1001, "bob", msgTime, true); strings.Contains(got, "\a") || !json.Valid([]byte(got)) {
		t.Errorf("JSON nudge = %q: the bell is for terminals only", got)
	}
}

func TestPrinterMultiLinePlain(t *testing.T) {
	var buf bytes.Buffer
	p := testPrinter(&buf, false)
	p.Emit(nil, "1001 bob online\n1 online")
	if buf.String() != "1001 bob online\n1 online\n" {
		t.Errorf("printed %q", buf.String())
	}
	// With Above (the terminal), each line goes there, nothing to w.
	var above []string
	buf.Reset()
	p.Above = func(l string) { above = append(above, l) }
	p.Emit(nil, "a\nb")
	if buf.Len() != 0 || !slices.Equal(above, []string{"a", "b"}) {
		t.Errorf("Above got %q, w got %q", above, buf.String())
	}
	// JSON ignores Above: scripts read w.
	buf.Reset()
	above = nil
	p.JSON = true
	p.Emit(NewError("", CodeFailed, "x"), "a")
	if above != nil || !json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Errorf("JSON with Above: above %q, w %q", above, buf.String())
	}
}

// Printer.Emit(nil, plain) in JSON mode (chat's own notes: "* offering
// ... to ...", retries) writes a "note" object, never "null": the README
// says every line is an object with a "type".
func TestPrinterJSONNeverPrintsNull(t *testing.T) {
	var buf bytes.Buffer
	p := testPrinter(&buf, true)
	p.Emit(nil, "* offering a.txt (1 file, 1 B) to bob (1001)")
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["type"] == nil {
			t.Errorf("JSON output line %q is not an object with a type", l)
		}
	}
}

func TestPrinterStamp(t *testing.T) {
	now := time.Date(2026, 11, 22, 15, 30, 0, 0, time.Local)
	p := &Printer{Now: func() time.Time { return now }}
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		// Today: the time of day.
		{time.Date(2026, 11, 22, 9, 5, 7, 0, time.Local), "[09:05:07]"},
		{time.Date(2026, 11, 22, 0, 0, 0, 0, time.Local), "[00:00:00]"},
		// The six days before: the day and the time (2026-11-22 is a Sunday).
		{time.Date(2026, 11, 21, 9, 5, 7, 0, time.Local), "[Sat 09:05]"},
		{time.Date(2026, 11, 16, 0, 0, 0, 0, time.Local), "[Mon 00:00]"},
		// Before: the date.
		{time.Date(2026, 11, 15, 23, 59, 0, 0, time.Local), "[2026-11-15 23:59]"},
		{time.Date(2025, 11, 22, 9, 5, 7, 0, time.Local), "[2025-11-22 09:05]"},
		// Later than now (a clock ahead): the date, so it cannot pass for today.
		{time.Date(2026, 11, 22, 18, 0, 0, 0, time.Local), "[2026-11-22 18:00]"},
		{time.Date(2026, 11, 23, 9, 0, 0, 0, time.Local), "[2026-11-23 09:00]"},
	} {
		if got := p.Stamp(tc.t); got != tc.want {
			t.Errorf("Stamp(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// lineWriter records every Write call, to check that a record is one write.
type lineWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, string(p))
	w.mu.Unlock()
	return len(p), nil
}

func TestPrinterConcurrentRecordsDoNotInterleave(t *testing.T) {
	for _, jsonOut := range []bool{false, true} {
		w := &lineWriter{}
		p := NewPrinter(w, jsonOut)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					p.Message(Message{Kind: "MSG", ID: int64(g*100 + i + 1), From: 1001, FromNick: "bob", Time: msgTime, Text: strings.Repeat("x", 100*g)}, alice)
				}
			}()
		}
		wg.Wait()
		if len(w.writes) != 8*50 {
			t.Fatalf("json=%v: %d writes for %d records", jsonOut, len(w.writes), 8*50)
		}
		for _, s := range w.writes {
			if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
				t.Fatalf("json=%v: write %q is not one whole line", jsonOut, s)
			}
			if jsonOut && !json.Valid([]byte(s)) {
				t.Fatalf("invalid JSON line %q", s)
			}
		}
	}
}

// Printer.Presence escapes the state word too in plain output.
// The state is a word of the PRESENCE line, so ASCII controls cannot be
// in it, but C1 controls and bidi characters can ("PRESENCE 1001 bob
// on\u202eline"): a buggy or hostile server reorders or drives the
// terminal, which the nickname and status beside it are escaped against.
func TestPrinterPresenceEscapesState(t *testing.T) {
	pr, err := PresenceEvent(line(t, "PRESENCE 1001 bob on\u202eline\u009b31m away text"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if got := testPrinter(&buf, false).Presence(pr); fakeserver.TerminalUnsafe(got) != "" {
		t.Errorf("Presence(%+v) = %q: %s", pr, got, fakeserver.TerminalUnsafe(got))
	}
}

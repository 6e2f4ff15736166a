package protocol

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Events is the table of event kinds: lines the server sends on its own,
// not in answer to a request. A client ignores kinds it does not know.
var Events = []Syntax{
	{Name: "MSG", Usage: "<msgid> <from> <from_nick> <time> <text>", Min: 5, Max: 5, Trailing: true, Help: "a private message; answer with ACK <msgid> once shown or saved"},
	{Name: "GMSG", Usage: "<msgid> <from> <from_nick> <time> <#group> <text>", Min: 6, Max: 6, Trailing: true, Help: "a group message; ACK it like MSG"},
	{Name: "REQUEST", Usage: "<msgid> <from> <from_nick> <time> friend|invite [<#group>]", Min: 5, Max: 6, Help: "a friend request or group invite; ACK it, answer with ACCEPT or REJECT"},
	{Name: "NOTICE", Usage: "<msgid> <from> <from_nick> <time> <what> [<#group>|<file-id> <name>]", Min: 5, Max: 6, Trailing: true, Help: "what happened to a request, friendship, membership or offline file; ACK it"},
	{Name: "PRESENCE", Usage: "<id> <nick> online|offline|away [<status>]", Min: 3, Max: 4, Trailing: true, Help: "a user came online, went away or left"},
	{Name: "PRESENCES", Usage: "<since> <online> <away> <offline>", Min: 4, Max: 4, Help: "many users' presence changed at once (how many are now online, away, offline): LIST <since> says who"},
	{Name: "NUDGE", Usage: "<from> <from_nick> <time>", Min: 3, Max: 3, Help: "a nudge: shake the window"},
	{Name: "RECEIPT", Usage: "<id> <nick> shown|read <msgid>", Min: 4, Max: 4, Help: "<id>'s client has shown (or <id> has read) the messages you sent them, up to <msgid>"},
	{Name: "TYPING", Usage: "<from> <from_nick> on|off", Min: 3, Max: 3, Help: "<from> is typing a message to you, or stopped"},
	{Name: "OFFER", Usage: "<ticket> <from> <from_nick> <time> chat|file [<count> <bytes> <name>]", Min: 5, Max: 8, Trailing: true, Help: "a direct chat or file offer: answer ACCEPT or REJECT chat|file <ticket>"},
	{Name: "OFFLINE", Usage: "<file-id> <from> <from_nick> <time> <bytes> <name>", Min: 6, Max: 6, Trailing: true, Help: "a file left for you on the server: take it with GET <file-id>, refuse it with DROP <file-id>"},
	{Name: "CANCEL", Usage: "<ticket> timeout|gone", Min: 2, Max: 2, Help: "an offer is no longer waiting: it timed out, or its sender left"},
	{Name: "PING", Usage: "<token>", Min: 1, Max: 1, Help: "keepalive; answer PONG <token>"},
	{Name: "BYE", Usage: "<reason> [<text>]", Min: 1, Max: 2, Trailing: true, Help: "the server is closing this connection, and why"},
}

var eventIndex = index(Events)

// LookupEvent returns the syntax of an event kind, or nil.
func LookupEvent(kind string) *Syntax { return eventIndex[kind] }

// Line is one line from the server: a reply (Code != 0) or an event (Kind != "").
type Line struct {
	Tag  string   // the request's tag a reply echoes; "" for events and untagged replies
	Code int      // reply code, 0 for an event
	More bool     // reply continues on the next line (written CODE-text)
	Text string   // reply text
	Kind string   // event kind
	Args []string // event arguments by the kind's syntax
}

// IsEvent reports whether l is an event rather than a reply.
func (l Line) IsEvent() bool { return l.Code == 0 }

// Err returns the reply as an *Error when its code is a failure (4xx, 5xx).
func (l Line) Err() error {
	if l.Code >= 400 {
		return &Error{Code: l.Code, Text: l.Text}
	}
	return nil
}

// ParseLine parses one server line (without its line end).
//
//	reply: [@tag ]CODE[-| ]text
//	event: KIND arg ... [trailing]
func ParseLine(b []byte) (Line, error) {
	var l Line
	b = bytes.TrimRight(b, "\r")
	if len(b) > MaxLine {
		return l, Errorf(CodeTooLong, "line too long")
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return l, Errorf(CodeSyntax, "line is not clean UTF-8")
	}
	s := string(b)
	if strings.HasPrefix(s, "@") {
		l.Tag, s = cut(s[1:])
		if !ValidTag(l.Tag) {
			return l, Errorf(CodeSyntax, "bad tag")
		}
	}
	if len(s) >= 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) {
		l.Code = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
		if l.Code < 100 {
			return l, Errorf(CodeSyntax, "bad reply code")
		}
		switch {
		case len(s) == 3:
		case s[3] == '-':
			l.More, l.Text = true, s[4:]
		case s[3] == ' ':
			l.Text = s[4:]
		default:
			return l, Errorf(CodeSyntax, "bad reply code")
		}
		return l, nil
	}
	if l.Tag != "" {
		return l, Errorf(CodeSyntax, "tag on an event")
	}
	kind, rest := cut(s)
	if !isWord(kind) || strings.ToUpper(kind) != kind {
		return l, Errorf(CodeSyntax, "neither a reply nor an event")
	}
	l.Kind = kind
	syn := LookupEvent(kind)
	if syn == nil {
		// Unknown kind (a newer server): keep the words, the client skips it.
		l.Args = strings.Fields(rest)
		return l, nil
	}
	args, err := splitArgs(nil, rest, syn)
	if err != nil {
		return l, err
	}
	l.Args = args
	return l, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// AppendReply appends one reply line to dst. more marks a continuation line
// of a multi-line reply. text must already be one clean line.
func AppendReply(dst []byte, tag string, code int, more bool, text string) []byte {
	if tag != "" {
		dst = append(dst, '@')
		dst = append(dst, tag...)
		dst = append(dst, ' ')
	}
	dst = strconv.AppendInt(dst, int64(code), 10)
	if more {
		dst = append(dst, '-')
	} else {
		dst = append(dst, ' ')
	}
	dst = appendClean(dst, text)
	return append(dst, '\n')
}

// AppendEvent appends one event line to dst. Every argument but a trailing
// last one must be a word; the trailing one has CR, LF and NUL replaced so
// that nothing can start a second line.
func AppendEvent(dst []byte, kind string, args ...string) []byte {
	dst = append(dst, kind...)
	for _, a := range args {
		dst = append(dst, ' ')
		dst = appendClean(dst, a)
	}
	return append(dst, '\n')
}

// appendClean appends s with NUL, CR and LF replaced by spaces.
func appendClean(dst []byte, s string) []byte {
	if !strings.ContainsAny(s, "\x00\r\n") {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// TimeLayout is how times are written on the wire: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime writes t in TimeLayout.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime reads a time written by FormatTime (any RFC 3339 time is accepted).
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

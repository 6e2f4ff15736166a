package client

import (
	"errors"
	"fmt"
	"time"

	"qchat/protocol"
)

// How chat and recv show a Session's connection events and the messages
// waiting in its outbox.

type (
	// ConnectionRecord is a change of the connection (--json).
	ConnectionRecord struct {
		Type   string `json:"type"` // "connection"
		Time   string `json:"time"`
		State  string `json:"state"`           // "lost", "reconnecting" or "back"
		Server string `json:"server"`          // lost: the server lost; reconnecting: the one about to be tried; back: the one connected
		Error  string `json:"error,omitempty"` // lost: why; reconnecting: why the attempt before failed
		// Where it goes with several servers: lost says which one is
		// tried first (next), reconnecting which one Error is about
		// (failed), back which one the connection was lost to
		// (previous: another one when the client moved).
		Next     string `json:"next,omitempty"`
		Failed   string `json:"failed,omitempty"`
		Attempt  int    `json:"attempt,omitempty"` // reconnecting: 1, 2, ...
		Previous string `json:"previous,omitempty"`
	}
	// PendingRecord is a message kept in the outbox while there is no
	// connection (--json); its "sent" record follows once it is through.
	PendingRecord struct {
		Type string `json:"type"` // "pending"
		Time string `json:"time"`
		CID  string `json:"cid"` // the client id, as in the "sent" record that follows
		To   string `json:"to"`  // as typed: an id, a nickname or "#group"
		Text string `json:"text"`
	}
)

// ConnRecord is ev as a JSON record.
func ConnRecord(ev ConnEvent) ConnectionRecord {
	r := ConnectionRecord{Type: "connection", Time: protocol.FormatTime(ev.Time), State: ev.State, Server: ev.Server,
		Next: ev.Next, Failed: ev.Failed, Attempt: ev.Attempt, Previous: ev.From}
	if ev.Err != nil {
		r.Error = ConnErrText(ev.Err)
	}
	return r
}

// ConnErrText says in words why a connection ended or could not be made.
func ConnErrText(err error) string {
	var de *DialError
	var gu *GaveUpError
	switch {
	case errors.As(err, &gu):
		return gu.Error()
	case errors.As(err, &de):
		s := de.Cause
		if de.Hint != "" {
			s += " — " + de.Hint
		}
		return s
	}
	return LostCause(err)
}

// ConnText is ev as a line for people, "" for an event they need not see
// (each attempt of a reconnect to one server: the loss was said once).
// With several servers, each move to another one while going through the
// list the first time is said, and once that none of them answers.
func ConnText(ev ConnEvent) string {
	switch {
	case ev.State == ConnLost && ev.Next != "" && ev.Next != ev.Server:
		return fmt.Sprintf("connection to %s lost (%s); trying %s…", protocol.Escape(ev.Server), ConnErrText(ev.Err), protocol.Escape(ev.Next))
	case ev.State == ConnLost:
		return fmt.Sprintf("connection to %s lost (%s); reconnecting…", protocol.Escape(ev.Server), ConnErrText(ev.Err))
	case ev.State == ConnReconnecting && ev.Servers > 1 && ev.Attempt > 1 && ev.Attempt <= ev.Servers:
		return fmt.Sprintf("%s; trying %s…", withAddr(ev.Failed, ev.Err), protocol.Escape(ev.Server))
	case ev.State == ConnReconnecting && ev.Servers > 1 && ev.Attempt == ev.Servers+1:
		return fmt.Sprintf("%s; none of the %d servers answers: trying them again, less and less often…", withAddr(ev.Failed, ev.Err), ev.Servers)
	case ev.State == ConnBack:
		s := fmt.Sprintf("reconnected: back on %s after %s", protocol.Escape(ev.Server), roundDown(ev.Down))
		if ev.From != "" && ev.From != ev.Server {
			s += fmt.Sprintf(" (moved from %s)", protocol.Escape(ev.From))
		}
		if ev.Resent > 0 {
			s += fmt.Sprintf("; %s without an answer sent again", Plural(ev.Resent, "message"))
		}
		return s
	}
	return ""
}

func roundDown(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// Connection prints a connection event (nothing for a reconnect attempt
// in plain output) and returns what it printed.
func (p *Printer) Connection(ev ConnEvent) string {
	text := ConnText(ev)
	if text == "" && !p.JSON {
		return ""
	}
	if text == "" {
		text = fmt.Sprintf("reconnecting to %s (attempt %d)", protocol.Escape(ev.Server), ev.Attempt)
	}
	return p.Emit(ConnRecord(ev), "* "+text)
}

// Pending prints a message kept in the outbox until the connection is back.
func (p *Printer) Pending(m *Pending, to string) string {
	return p.Emit(PendingRecord{Type: "pending", Time: protocol.FormatTime(m.Queued), CID: m.CID, To: m.To, Text: m.Text},
		fmt.Sprintf("%s → %s: %s  [pending: sent once the connection is back]", p.Stamp(m.Queued), to, protocol.Escape(m.Text)))
}

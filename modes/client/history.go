package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"qchat/history"
	"qchat/protocol"
)

// The server's history archive (PROTOCOL.md section 4, "History"): what a
// server started with --history-days keeps of every conversation, asked
// for a page at a time with HISTORY.

// ErrNoServerHistory is what History says to a server that keeps none
// (its greeting does not say "history"): nothing is sent.
var ErrNoServerHistory = errors.New("the server keeps no history (it was not started with --history-days, or is an older qchat serve)")

// HistoryMaxPage is the most messages a server sends in one page.
const HistoryMaxPage = 200

// HistoryPage is one page of the archive, in id order. More says that
// more lie beyond it in its direction.
type HistoryPage struct {
	Msgs []HistoryMsg
	More bool
}

// HistoryMsg is one archived message as the user sees it.
type HistoryMsg struct {
	ID           int64
	Time         time.Time
	Out          bool   // sent by the user
	From         int64  // the sender
	FromNick     string // its nickname when it was sent
	Conversation string // the other user's id, or "#group"
	Text         string
}

// Record is m as the history files keep it.
func (m HistoryMsg) Record() history.Record {
	return history.Record{Time: m.Time, ID: m.ID, Out: m.Out, From: m.From, Nick: m.FromNick, Text: m.Text}
}

// HasHistory reports whether the server keeps history (greeting
// extension "history").
func (c *Client) HasHistory() bool { return c.hist }

// HasHistory is Client.HasHistory of the connection of the moment; false
// while down.
func (s *Session) HasHistory() bool {
	cl := s.current()
	return cl != nil && cl.HasHistory()
}

// History asks for a page of the archive: of the conversation with who
// (an id or a nickname, "#group", or "*" for every conversation), the
// limit messages after the id after (forward: after >= 0), or the last
// ones before the id before (after < 0; before 0: the newest).
func (s *Session) History(ctx context.Context, who string, after, before int64, limit int) (HistoryPage, error) {
	if !s.HasHistory() {
		return HistoryPage{}, ErrNoServerHistory
	}
	args := []string{who}
	switch {
	case after >= 0:
		args = append(args, "after", strconv.FormatInt(after, 10))
	case before > 0:
		args = append(args, "before", strconv.FormatInt(before, 10))
	}
	args = append(args, strconv.Itoa(limit))
	r, err := s.Do(ctx, "HISTORY", args...)
	if err != nil {
		return HistoryPage{}, err
	}
	return ParseHistory(r)
}

// ParseHistory reads the reply to HISTORY: lines "<msgid> <time> in|out
// <from> <from_nick> <conversation> <text>", then "<n> messages[ more]".
func ParseHistory(r Reply) (HistoryPage, error) {
	var p HistoryPage
	last := strings.Fields(r.Text)
	if len(last) < 2 || last[1] != "messages" {
		return p, fmt.Errorf("unexpected reply to HISTORY: %q", protocol.Clip(r.Text, 60))
	}
	p.More = len(last) > 2 && last[2] == "more"
	for _, l := range r.Lines {
		f := strings.SplitN(l, " ", 7)
		bad := fmt.Errorf("malformed HISTORY line %q", protocol.Clip(l, 60))
		if len(f) < 6 {
			return p, bad
		}
		var m HistoryMsg
		var ok1, ok2 bool
		var err error
		m.ID, ok1 = protocol.ParseID(f[0])
		m.Time, err = protocol.ParseTime(f[1])
		m.From, ok2 = protocol.ParseID(f[3])
		m.FromNick, m.Conversation = f[4], f[5]
		if len(f) == 7 {
			m.Text = f[6]
		}
		_, convOK := protocol.ParseID(m.Conversation)
		convOK = convOK || strings.HasPrefix(m.Conversation, "#") && len(m.Conversation) > 1
		if !ok1 || !ok2 || err != nil || !convOK || f[2] != "in" && f[2] != "out" || m.FromNick == "" {
			return p, bad
		}
		m.Out = f[2] == "out"
		p.Msgs = append(p.Msgs, m)
	}
	return p, nil
}

package serve

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"qchat/modes/serve/store"
	"qchat/protocol"
)

// Bounds of one page of HISTORY: lines, and bytes, so that a page of
// long messages stays far below --max-outbound (a client is cut off as a
// slow consumer past it).
const (
	historyDefault  = 50
	historyMaxLines = 200
	historyMaxBytes = 256 << 10
)

var errNoHistory = protocol.Errorf(protocol.CodeNotYet, "this server keeps no history (serve --history-days 0)")

// HISTORY <id|nick|#group|*> [before|after <msgid>] [<limit>]
//
// A page of the archive (archive.go): the conversation with a user, a
// group's since the user joined it (members only), or every conversation
// of the user (*), in id order. Without before or after, the last page.
// One line per message, "<msgid> <time> in|out <from> <from_nick>
// <conversation> <text>", then "<n> messages", with " more" when the page
// was cut short: more lie beyond it in its direction.
func (s *session) cmdHistory(c *protocol.Command) error {
	arch := s.srv.po.arch
	if arch == nil {
		return errNoHistory
	}
	me := s.loggedIn()
	q := store.HistoryQuery{User: me, Limit: historyDefault}
	args := c.Args[1:]
	if len(args) >= 2 && (args[0] == "before" || args[0] == "after") {
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || id < 0 {
			return protocol.Errorf(protocol.CodeSyntax, "HISTORY: %s takes a message id", args[0])
		}
		if args[0] == "before" {
			q.Before = id
		} else {
			q.Forward, q.After = true, id
		}
		args = args[2:]
	}
	switch len(args) {
	case 0:
	case 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			return protocol.Errorf(protocol.CodeSyntax, "HISTORY: a limit is a number from 1 (at most %d are sent)", historyMaxLines)
		}
		q.Limit = min(n, historyMaxLines)
	default:
		return protocol.Errorf(protocol.CodeSyntax, "usage: HISTORY <id|nick|#group|*> [before|after <msgid>] [<limit>]")
	}
	switch who := c.Args[0]; {
	case who == "*":
	case strings.HasPrefix(who, "#"):
		g, _, err := s.srv.soc.members(me, who)
		if err != nil {
			return err
		}
		q.Group = store.GroupKey(g.name)
	default:
		a, err := s.target(who)
		if err != nil {
			return err
		}
		q.Peer = a.id
	}
	// Only below the watermark: a message not yet archived may be older
	// than one that is.
	q.Below, q.Since = arch.watermark(), arch.since()
	want := q.Limit
	q.Limit++ // one more says whether there are more
	items, err := s.srv.store.History(context.Background(), q)
	if err != nil {
		s.srv.log.Error("history", "user", me, "err", err)
		return protocol.Errorf(protocol.CodeLocalError, "history could not be read; try later")
	}
	more := len(items) > want
	if more { // the one too many is at the far end of the page's direction
		if q.Forward {
			items = items[:want]
		} else {
			items = items[1:]
		}
	}
	lines := make([]string, 0, len(items))
	size := 0
	for i := range items {
		// Forward pages are cut at their end, backward ones at their start.
		j := i
		if !q.Forward {
			j = len(items) - 1 - i
		}
		l := historyLine(me, &items[j])
		if size += len(l) + 8; size > historyMaxBytes && len(lines) > 0 {
			more = true
			break
		}
		lines = append(lines, l)
	}
	if !q.Forward {
		for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
			lines[i], lines[j] = lines[j], lines[i]
		}
	}
	last := fmt.Sprintf("%d messages", len(lines))
	if more {
		last += " more"
	}
	s.replyLines(c.Tag, protocol.CodeList, lines, last)
	return nil
}

// historyLine is one message of a HISTORY page, as user sees it:
// "<msgid> <time> in|out <from> <from_nick> <conversation> <text>", the
// conversation being the other user's id or "#group".
func historyLine(user int64, m *store.Item) string {
	dir, conv, text := "in", m.Sender, m.Body
	if m.Sender == user {
		dir, conv = "out", m.Recipient
	}
	var b strings.Builder
	b.Grow(len(m.Body) + len(m.Nick) + 64)
	b.WriteString(idStr(m.ID))
	b.WriteByte(' ')
	b.Write(appendWireTime(nil, m.Time))
	b.WriteByte(' ')
	b.WriteString(dir)
	b.WriteByte(' ')
	b.WriteString(idStr(m.Sender))
	b.WriteByte(' ')
	b.WriteString(m.Nick)
	b.WriteByte(' ')
	if m.GroupKey != "" {
		var group string
		group, text, _ = strings.Cut(m.Body, " ") // "#Name text"
		b.WriteString(group)
	} else {
		b.WriteString(idStr(conv))
	}
	b.WriteByte(' ')
	b.Write(appendOneLine(nil, text))
	return b.String()
}

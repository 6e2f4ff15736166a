package chat

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"qchat/history"
	"qchat/modes/client"
	"qchat/protocol"
)

// historyCount is how many messages /history shows by default.
const historyCount = 20

// /history [ID|#GROUP] [N] [--server] [/WORD/]
//
// The conversation is the target's when none is named; N is a count
// (a number below 1000, the first user id, is a count even in the first
// place); /WORD/ is a case-insensitive regular expression that the text
// or the sender's nickname must match (it may hold spaces). With --server
// the last N of the conversation on the server (serve --history-days) are
// merged into the local file first.
func (a *app) cmdHistory(ctx context.Context, args []string) error {
	if a.rec.Hist == nil {
		return errors.New("history is off (--no-history)")
	}
	var pattern string
	for i, w := range args {
		if strings.HasPrefix(w, "/") {
			pattern = strings.Join(args[i:], " ")
			args = args[:i]
			break
		}
	}
	fromServer := false
	if i := slices.Index(args, "--server"); i >= 0 {
		fromServer, args = true, slices.Delete(args, i, i+1)
	}
	if len(args) > 2 {
		return errUsage{lookupCommand("/history")}
	}
	a.mu.Lock()
	conv := a.cur
	a.mu.Unlock()
	n := historyCount
	if len(args) == 2 || len(args) == 1 && isCount(args[0]) {
		v, err := strconv.Atoi(args[len(args)-1])
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a count", protocol.Clip(args[len(args)-1], 20))
		}
		n, args = v, args[:len(args)-1]
	}
	if len(args) == 1 {
		c, err := a.conversationArg(ctx, args[0])
		if err != nil {
			return err
		}
		conv = c
	}
	if conv == "" {
		return &codedError{client.CodeUsage, "no target yet: /history ID"}
	}
	if fromServer {
		if err := a.fetchHistory(ctx, conv, n); err != nil {
			return err
		}
	}
	var recs []history.Record
	var err error
	if pattern == "" {
		recs, err = a.rec.Hist.Read(conv, n)
	} else {
		re, rerr := regexp.Compile("(?i)" + strings.TrimSuffix(strings.TrimPrefix(pattern, "/"), "/"))
		if rerr != nil {
			return fmt.Errorf("search %s: %w", protocol.Escape(pattern), rerr)
		}
		recs, err = a.rec.Hist.Search(conv, n, func(r history.Record) bool { return re.MatchString(r.Text) || re.MatchString(r.Nick) })
	}
	if err != nil {
		return err
	}
	for _, r := range recs {
		dir := "in"
		if r.Out {
			dir = "out"
		}
		rec := &historyRecord{Result: client.NewResult("history"), Conversation: conv, ID: r.ID, Direction: dir, From: r.From, FromNick: r.Nick, Text: r.Text}
		rec.Time = protocol.FormatTime(r.Time)
		a.emit(ctx, rec, a.historyLine(r))
	}
	if len(recs) == 0 && !a.cfg.JSON {
		what := "no history with " + a.convName(conv)
		if pattern != "" {
			what = "nothing with " + a.convName(conv) + " matches " + protocol.Escape(pattern)
		}
		a.out.Emit(nil, what)
	}
	return nil
}

// isCount tells a count from a user id: ids start at 1000.
func isCount(s string) bool {
	v, err := strconv.Atoi(s)
	return err == nil && v < 1000
}

// historyLine shows a message of history: "[Mon 14:02] bob (1001): text".
func (a *app) historyLine(r history.Record) string {
	return fmt.Sprintf("%s %s: %s", a.out.Stamp(r.Time), client.Name(r.From, r.Nick), protocol.Escape(r.Text))
}

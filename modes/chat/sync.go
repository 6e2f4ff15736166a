package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"qchat/history"
	"qchat/modes/client"
)

// Syncing with the server's archive (serve --history-days): the local
// history files are filled with what the server kept, so that a new
// machine, a wiped data folder, or a device that was off while another
// one of the same account chatted reads every conversation as the others
// do. One account has one session at a time (PROTOCOL.md section 3): a
// device catches up with what the others sent when it logs in (sync), not
// by carbons while they are both on.

// syncMark names the mark of how far the last sync got: the highest
// message id it merged (history.Log.Mark).
const syncMark = "sync"

type syncRecord struct {
	client.Result       // "sync"
	Messages      int   `json:"messages"`      // fetched from the server
	Added         int   `json:"added"`         // new in the local files
	Conversations int   `json:"conversations"` // with something new
	Mark          int64 `json:"mark"`          // the highest id the server gave so far
}

// sync fetches from the server every message of every conversation after
// the sync mark, page by page, merges each page into the local files and
// moves the mark (so a sync cut short goes on from there next time).
func (a *app) sync(ctx context.Context) (*syncRecord, error) {
	if a.rec.Hist == nil {
		return nil, errors.New("history is off (--no-history): there are no local files to fill")
	}
	if !a.cl.HasHistory() {
		return nil, client.ErrNoServerHistory
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	mark, err := a.rec.Hist.Mark(syncMark)
	if err != nil {
		return nil, err
	}
	res := &syncRecord{Result: client.NewResult("sync")}
	convs := map[string]bool{}
	for {
		page, err := a.cl.History(ctx, "*", mark, 0, client.HistoryMaxPage)
		if err != nil {
			return nil, err
		}
		n, added, err := a.mergePage(page)
		res.Messages += len(page.Msgs)
		res.Added += n
		for c := range added {
			convs[c] = true
		}
		if err != nil {
			return nil, err
		}
		if len(page.Msgs) > 0 {
			mark = page.Msgs[len(page.Msgs)-1].ID
			if err := a.rec.Hist.SetMark(syncMark, mark); err != nil {
				return nil, err
			}
		}
		if !page.More || len(page.Msgs) == 0 {
			break
		}
	}
	res.Conversations, res.Mark = len(convs), mark
	return res, nil
}

// mergePage merges a page into the local files, each message into its
// conversation's, and returns how many were new and in which
// conversations.
func (a *app) mergePage(page client.HistoryPage) (int, map[string]bool, error) {
	by := map[string][]history.Record{}
	for _, m := range page.Msgs {
		by[m.Conversation] = append(by[m.Conversation], m.Record())
		a.rememberIfUnknown(m.From, m.FromNick)
	}
	total, added := 0, map[string]bool{}
	for conv, recs := range by {
		n, err := a.rec.Hist.Merge(conv, recs)
		if err != nil {
			return total, added, err
		}
		if n > 0 {
			total += n
			added[conv] = true
		}
	}
	return total, added, nil
}

// /sync
func (a *app) cmdSync(ctx context.Context, args []string) error {
	res, err := a.sync(ctx)
	if err != nil {
		return err
	}
	a.emit(ctx, res, syncLine(res))
	return nil
}

func syncLine(res *syncRecord) string {
	return fmt.Sprintf("synced: %d messages from the server, %d new here in %d conversations", res.Messages, res.Added, res.Conversations)
}

// syncAtLogin fills the local files from the server after a login (or a
// reconnect) when the server keeps history: what this account's other
// devices sent meanwhile comes into the files. Only what was new is said.
// With --sync the run's own /sync does it, and says it.
func (a *app) syncAtLogin(ctx context.Context) {
	if a.rec.Hist == nil || !a.cl.HasHistory() || a.cfg.Sync {
		return
	}
	res, err := a.sync(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		a.failOutside(a.stderr, "sync", err)
	case err == nil && res.Added > 0:
		a.note(a.out.Emit(res, syncLine(res)))
	}
}

// fetchHistory is /history ... --server: the last n messages of conv on
// the server, merged into the local file. It says what it did.
func (a *app) fetchHistory(ctx context.Context, conv string, n int) error {
	if !a.cl.HasHistory() {
		return client.ErrNoServerHistory
	}
	page, err := a.cl.History(ctx, conv, -1, 0, min(n, client.HistoryMaxPage))
	if err != nil {
		return err
	}
	added, _, err := a.mergePage(page)
	if err != nil {
		return err
	}
	if a.cfg.JSON {
		return nil
	}
	note := fmt.Sprintf("server: %d messages of %s, %d new here", len(page.Msgs), a.convName(conv), added)
	if strings.HasPrefix(conv, "#") {
		a.out.Emit(nil, note)
		return nil
	}
	// Direct chats (/chat) never pass through the server: say so when
	// this conversation has some, only here.
	if recs, err := a.rec.Hist.Search(conv, 1, func(r history.Record) bool { return r.ID < 0 }); err == nil && len(recs) > 0 {
		note += " (direct chat lines are not on the server: only on the devices that had them)"
	}
	a.out.Emit(nil, note)
	return nil
}

package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"qchat/modes/serve/store"
)

// The inbox: durable events waiting for their recipient, one row per
// recipient (group messages are in groups.go), and the client ids of
// acknowledged stored messages (sent_ids), kept for a day so that a resend
// after a restart is recognised whether or not the recipient took the
// message meanwhile. Nothing here is written for a message that never
// touches the disk.

// SaveInbox queues items for durable storage; callback runs once they are
// committed (or failed). A group message is written once, however many of
// its members' copies the batch holds.
func (s *Store) SaveInbox(items []store.Item, callback func(error)) {
	s.submit(func(ctx context.Context, tx Querier) error {
		stmts := make([]Stmt, 0, len(items))
		var last int64 // the group message written last: copies come together
		for _, m := range items {
			switch {
			case m.GroupKey == "":
				stmts = append(stmts, st(`INSERT INTO inbox (recipient, id, kind, sender, nick, time, body, cid)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (recipient, id) DO NOTHING`,
					m.Recipient, m.ID, m.Kind, m.Sender, m.Nick, m.Time.UnixMilli(), m.Body, m.CID))
			case m.ID != last:
				last = m.ID
				stmts = append(stmts, SaveGroupRow(m))
			}
		}
		return tx.ExecBatch(ctx, stmts)
	}, callback)
}

// DeleteInbox queues the removal of acknowledged items; nothing waits,
// and it never blocks (it is called from the writer's own callbacks).
func (s *Store) DeleteInbox(recipient int64, ids []int64, sent ...store.SentID) {
	s.queueDeletion(deletion{recipient: recipient, ids: ids, sent: sent})
}

// deleteInbox applies the deletions and cursor moves, in order, and with
// prune drops the client ids that are too old to keep.
func deleteInbox(ctx context.Context, tx Querier, dels []deletion, prune bool) error {
	var stmts []Stmt
	if prune {
		stmts = append(stmts, st(`DELETE FROM sent_ids WHERE time < $1`, time.Now().Add(-store.SentIDsKept).UnixMilli()))
	}
	var seen map[store.SentID]bool
	for _, d := range dels {
		for _, k := range d.sent {
			if seen[k] { // a group message's copies share one
				continue
			}
			if seen == nil {
				seen = make(map[store.SentID]bool)
			}
			seen[k] = true
			stmts = append(stmts, st(`INSERT INTO sent_ids (sender, cid, msgid, time) VALUES ($1, $2, $3, $4)
				ON CONFLICT (sender, cid) DO NOTHING`, k.Sender, k.CID, k.ID, k.Time.UnixMilli()))
		}
	}
	for _, d := range dels {
		for _, id := range d.ids {
			stmts = append(stmts, st(`DELETE FROM inbox WHERE recipient = $1 AND id = $2`, d.recipient, id))
		}
	}
	return tx.ExecBatch(ctx, append(stmts, moveCursors(dels)...))
}

// Inbox returns a recipient's stored items in id order: its own rows and
// the stored messages of its groups past its cursors.
func (s *Store) Inbox(ctx context.Context, recipient int64) ([]store.Item, error) {
	var out []store.Item
	err := EachRow(ctx, s.d.Reader(), `SELECT id, kind, sender, nick, time, body, cid FROM inbox WHERE recipient = $1 ORDER BY id`,
		[]any{recipient}, func(r Rows) error {
			m := store.Item{Recipient: recipient}
			var ms int64
			err := r.Scan(&m.ID, &m.Kind, &m.Sender, &m.Nick, &ms, &m.Body, &m.CID)
			m.Time = time.UnixMilli(ms)
			out = append(out, m)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	group, err := s.groupInbox(ctx, recipient)
	if err != nil {
		return nil, err
	}
	if len(group) == 0 {
		return out, nil
	}
	out = append(out, group...)
	slices.SortFunc(out, func(a, b store.Item) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// InboxSenders returns how many items each recipient has stored from each
// sender, keyed by {recipient, sender}.
func (s *Store) InboxSenders(ctx context.Context) (map[[2]int64]int, error) {
	out := make(map[[2]int64]int)
	err := EachRow(ctx, s.d.Reader(), `SELECT recipient, sender, COUNT(*) FROM inbox GROUP BY recipient, sender`, nil, func(r Rows) error {
		var to, from int64
		var n int
		err := r.Scan(&to, &from, &n)
		out[[2]int64{to, from}] = n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("count inbox: %w", err)
	}
	return out, s.groupSenders(ctx, out)
}

// FindSent looks a message up by its sender and client id: the inbox rows
// that wait (for a group message: the members whose cursor is below it),
// and the id kept once rows were acknowledged.
func (s *Store) FindSent(ctx context.Context, sender int64, cid string) (store.FoundSent, error) {
	var f store.FoundSent
	if err := s.findSentGroup(ctx, sender, cid, &f); err != nil {
		return f, fmt.Errorf("find client id: %w", err)
	}
	db := s.d.Reader()
	err := EachRow(ctx, db, `SELECT recipient, id, time FROM inbox WHERE sender = $1 AND cid = $2 AND cid <> '' ORDER BY recipient`,
		[]any{sender, cid}, func(r Rows) error {
			var to, id, ms int64
			err := r.Scan(&to, &id, &ms)
			f.ID, f.Time = id, time.UnixMilli(ms)
			f.Pending = append(f.Pending, to)
			return err
		})
	if err != nil {
		return f, fmt.Errorf("find client id: %w", err)
	}
	var id, ms int64
	err = db.QueryRow(ctx, `SELECT msgid, time FROM sent_ids WHERE sender = $1 AND cid = $2`, sender, cid).Scan(&id, &ms)
	switch {
	case err == nil:
		f.ID, f.Time, f.Acked = id, time.UnixMilli(ms), true
	case !errors.Is(err, sql.ErrNoRows):
		return f, fmt.Errorf("find client id: %w", err)
	}
	return f, nil
}

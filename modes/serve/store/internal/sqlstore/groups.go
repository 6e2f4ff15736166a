package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"qchat/modes/serve/store"
)

// Group messages are stored once, with a cursor per member (fan-out on
// read, as JetStream's streams and ergo's history do): a group message
// that must be kept is one row of group_msgs, however many members wait
// for it, and members.acked is each member's cursor: every message of the
// group up to that id is done for that member (acknowledged, not meant
// for it, or sent by it). A member's stored group messages are the rows
// past its cursor, less its own and those of senders it blocks.
//
// A cursor only ever lags: the server moves it past an id once nothing of
// that group at or below it waits for the member, so a lagging cursor
// costs a duplicate after a restart, which clients drop by msgid, and
// never a lost message. A row is deleted once every member's cursor has
// passed it; its client id then moves to sent_ids, as an acknowledged
// inbox row's does.

// cursorOp moves a member's cursor in a group: up to to (never down), or,
// with lower, down below to+1 (a message older than the cursor was queued
// for the member again: a resend after a restart).
type cursorOp struct {
	user  int64
	group string // GroupKey; "" for no move
	to    int64
	lower bool
}

// SaveGroupRow writes a group message once (a copy of one stored already
// changes nothing).
func SaveGroupRow(m store.Item) Stmt {
	return st(`INSERT INTO group_msgs (id, namekey, sender, nick, time, body, cid) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO NOTHING`, m.ID, m.GroupKey, m.Sender, m.Nick, m.Time.UnixMilli(), m.Body, m.CID)
}

// groupWaiting selects, for a member ($1), the stored group messages past
// its cursors that are meant for it.
const groupWaiting = `FROM members m JOIN group_msgs g ON g.namekey = m.namekey AND g.id > m.acked
	WHERE m."user" = $1 AND g.sender <> m."user"
	AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b."user" = m."user" AND b.blocked = g.sender)`

// groupInbox returns the stored group messages waiting for user, in id
// order, as items of its inbox.
func (s *Store) groupInbox(ctx context.Context, user int64) ([]store.Item, error) {
	var out []store.Item
	err := EachRow(ctx, s.d.Reader(), `SELECT g.id, g.sender, g.nick, g.time, g.body, g.cid, g.namekey `+groupWaiting+` ORDER BY g.id`,
		[]any{user}, func(r Rows) error {
			m := store.Item{Recipient: user, Kind: "GMSG"}
			var ms int64
			err := r.Scan(&m.ID, &m.Sender, &m.Nick, &ms, &m.Body, &m.CID, &m.GroupKey)
			m.Time = time.UnixMilli(ms)
			out = append(out, m)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read group messages: %w", err)
	}
	return out, nil
}

// groupSenders adds to counts how many stored group messages wait for
// each member from each sender, keyed by {member, sender}.
func (s *Store) groupSenders(ctx context.Context, counts map[[2]int64]int) error {
	err := EachRow(ctx, s.d.Reader(), `SELECT m."user", g.sender, COUNT(*) FROM members m
		JOIN group_msgs g ON g.namekey = m.namekey AND g.id > m.acked
		WHERE g.sender <> m."user" AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b."user" = m."user" AND b.blocked = g.sender)
		GROUP BY m."user", g.sender`, nil, func(r Rows) error {
		var user, from int64
		var n int
		err := r.Scan(&user, &from, &n)
		counts[[2]int64{user, from}] += n
		return err
	})
	if err != nil {
		return fmt.Errorf("count group messages: %w", err)
	}
	return nil
}

// GroupsStored returns, for each group with stored messages, the highest
// id stored.
func (s *Store) GroupsStored(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64)
	err := EachRow(ctx, s.d.Reader(), `SELECT namekey, MAX(id) FROM group_msgs GROUP BY namekey`, nil, func(r Rows) error {
		var key string
		var hi int64
		err := r.Scan(&key, &hi)
		out[key] = hi
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("group messages: %w", err)
	}
	return out, nil
}

// MoveCursor queues a move of user's cursor in group (a GroupKey). Nothing
// waits, and it never blocks (it is called with mailboxes locked, and from
// the writer's callbacks); moves are applied in the order queued, with the
// deletions.
func (s *Store) MoveCursor(user int64, group string, to int64, lower bool) {
	s.queueDeletion(deletion{cursor: cursorOp{user: user, group: group, to: to, lower: lower}})
}

// moveCursors returns the statements that apply the cursor moves among
// dels, in order, then delete the rows of the groups touched that every
// member's cursor has passed.
func moveCursors(dels []deletion) []Stmt {
	var stmts []Stmt
	var touched []string
	for _, d := range dels {
		c := d.cursor
		if c.group == "" {
			continue
		}
		q := `UPDATE members SET acked = $1 WHERE namekey = $2 AND "user" = $3 AND acked < $1`
		if c.lower {
			q = `UPDATE members SET acked = $1 WHERE namekey = $2 AND "user" = $3 AND acked > $1`
		}
		stmts = append(stmts, st(q, c.to, c.group, c.user))
		if !slices.Contains(touched, c.group) {
			touched = append(touched, c.group)
		}
	}
	for _, g := range touched {
		stmts = append(stmts, dropPassedRows(g, false)...)
	}
	return stmts
}

// dropPassedRows deletes the stored messages of group that every member's
// cursor has passed (all of them with all), keeping their client ids.
func dropPassedRows(group string, all bool) []Stmt {
	bound := `(SELECT MIN(acked) FROM members WHERE namekey = $1)`
	if all {
		bound = `(SELECT MAX(id) FROM group_msgs WHERE namekey = $1)`
	}
	return []Stmt{
		st(`INSERT INTO sent_ids (sender, cid, msgid, time)
			SELECT sender, cid, id, time FROM group_msgs WHERE namekey = $1 AND cid <> '' AND id <= `+bound+`
			ON CONFLICT (sender, cid) DO NOTHING`, group),
		st(`DELETE FROM group_msgs WHERE namekey = $1 AND id <= `+bound, group),
	}
}

// findSentGroup looks a group message up by its sender and client id: its
// id, time, and the members whose cursor has not passed it.
func (s *Store) findSentGroup(ctx context.Context, sender int64, cid string, f *store.FoundSent) error {
	db := s.d.Reader()
	var id, ms int64
	var key string
	err := db.QueryRow(ctx, `SELECT id, time, namekey FROM group_msgs WHERE sender = $1 AND cid = $2`, sender, cid).Scan(&id, &ms, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	f.ID, f.Time = id, time.UnixMilli(ms)
	return EachRow(ctx, db, `SELECT "user" FROM members WHERE namekey = $1 AND acked < $2 AND "user" <> $3 ORDER BY "user"`,
		[]any{key, id, sender}, func(r Rows) error {
			var u int64
			err := r.Scan(&u)
			f.Pending = append(f.Pending, u)
			return err
		})
}

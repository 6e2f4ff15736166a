package sqlstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"qchat/modes/serve/store"
)

// The history archive (serve --history-days): every message once, a group
// message once for all its members, kept until PruneArchive drops it. It
// is written only when the server keeps history; nothing else reads it.

// Archive queues messages for the archive; callback runs once committed.
func (s *Store) Archive(items []store.Item, callback func(error)) {
	s.submit(func(ctx context.Context, tx Querier) error {
		stmts := make([]Stmt, 0, len(items))
		for _, m := range items {
			to := m.Recipient
			if m.GroupKey != "" {
				to = 0
			}
			stmts = append(stmts, st(`INSERT INTO archive (id, sender, recipient, namekey, nick, time, body)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
				m.ID, m.Sender, to, m.GroupKey, m.Nick, m.Time.UnixMilli(), m.Body))
		}
		return tx.ExecBatch(ctx, stmts)
	}, callback)
}

// archiveColumns is what History reads of a row, as store.Item takes it.
const archiveColumns = `a.id, a.sender, a.recipient, a.namekey, a.nick, a.time, a.body`

// History returns one page of the archive for q.User (store.HistoryQuery).
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]store.Item, error) {
	lo, hi := q.After, int64(math.MaxInt64)
	if q.Before > 0 {
		hi = q.Before
	}
	if q.Below > 0 {
		hi = min(hi, q.Below)
	}
	limit := max(q.Limit, 1)
	order := "DESC" // the last page below hi
	if q.Forward {
		order = "ASC"
	}
	// $1 user, $2 lo, $3 hi, $4 since, $5 limit, $6 peer or group.
	bounds := ` AND a.id > $2 AND a.id < $3 AND a.time >= $4`
	private := `SELECT ` + archiveColumns + ` FROM archive a WHERE a.namekey = ''`
	group := `SELECT ` + archiveColumns + ` FROM archive a JOIN members m ON m.namekey = a.namekey AND m."user" = $1
		WHERE a.namekey <> '' AND a.id > m.since`
	args := []any{q.User, lo, hi, q.Since.UnixMilli(), limit}
	var sql string
	switch {
	case q.Peer != 0:
		sql = private + ` AND ((a.sender = $1 AND a.recipient = $6) OR (a.sender = $6 AND a.recipient = $1))` + bounds
		args = append(args, q.Peer)
	case q.Group != "":
		sql = group + ` AND a.namekey = $6` + bounds
		args = append(args, q.Group)
	default:
		sql = private + ` AND (a.sender = $1 OR a.recipient = $1)` + bounds + ` UNION ALL ` + group + bounds
	}
	sql += ` ORDER BY id ` + order + ` LIMIT $5`
	var out []store.Item
	err := EachRow(ctx, s.d.Reader(), sql, args, func(r Rows) error {
		var m store.Item
		var ms int64
		err := r.Scan(&m.ID, &m.Sender, &m.Recipient, &m.GroupKey, &m.Nick, &ms, &m.Body)
		m.Time, m.Kind = time.UnixMilli(ms), "MSG"
		if m.GroupKey != "" {
			m.Kind = "GMSG"
		}
		out = append(out, m)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	if order == "DESC" {
		slices.Reverse(out)
	}
	return out, nil
}

// PruneArchive deletes archived messages sent before before.
func (s *Store) PruneArchive(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.do(ctx, func(ctx context.Context, tx Querier) error {
		cut := before.UnixMilli()
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM archive WHERE time < $1`, cut).Scan(&n); err != nil || n == 0 {
			return err
		}
		return tx.Exec(ctx, `DELETE FROM archive WHERE time < $1`, cut)
	})
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	return n, nil
}

// ArchiveTable is version 6 of both dialects (5 is the offline files',
// made at the same time on another branch): the history archive, one row
// per message (recipient 0 and the group's key for a group message),
// found by conversation, by group and by age; and members.since, the last
// message id given out when the member joined: its group's history starts
// after it (0 for those who joined before: the archive starts with this
// version). bigint is the dialect's type for an id.
func ArchiveTable(bigint string) func(ctx context.Context, tx Querier) error {
	return func(ctx context.Context, tx Querier) error {
		return ExecEach(ctx, tx,
			`CREATE TABLE archive (
				id        `+bigint+` PRIMARY KEY,
				sender    `+bigint+` NOT NULL,
				recipient `+bigint+` NOT NULL,
				namekey   TEXT NOT NULL,
				nick      TEXT NOT NULL,
				time      `+bigint+` NOT NULL,
				body      TEXT NOT NULL)`,
			`CREATE INDEX archive_pair ON archive (sender, recipient, id)`,
			`CREATE INDEX archive_recipient ON archive (recipient, id)`,
			`CREATE INDEX archive_group ON archive (namekey, id)`,
			`CREATE INDEX archive_time ON archive (time)`,
			`ALTER TABLE members ADD COLUMN since `+bigint+` NOT NULL DEFAULT 0`)
	}
}

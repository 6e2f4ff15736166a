package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/internal/sqlstore"
)

// The schema steps of SQLite (sqlstore.Migrate). Version 1 is the schema
// as qchat kept it before schema versions, reached from a data folder of
// any age before them (they upgraded themselves at open, by looking at
// what was there) or from nothing. Every later step is a version of its
// own, the same change as PostgreSQL's step of that number.
var migrations = []sqlstore.Migration{
	{Version: 1, What: "accounts, social, inbox, client ids, group messages with cursors", Up: legacy},
	{Version: 2, What: "message ids in counters", Up: sqlstore.Counters},
	{Version: 3, What: "members by user", Up: sqlstore.MembersByUser},
	{Version: 4, What: "receipts and typing settings", Up: sqlstore.Settings("INTEGER")},
	{Version: 6, What: "history archive", Up: sqlstore.ArchiveTable("INTEGER")},
	{Version: 7, What: "offline files", Up: sqlstore.OfflineTable("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER")},
	{Version: 8, What: "spent resumption tokens", Up: sqlstore.TokensTable("INTEGER")},
}

// schema is the oldest schema: a data folder of the first version has
// these tables and nothing else (no cid, no cursor). Ids: only INTEGER
// PRIMARY KEY AUTOINCREMENT is a rowid that is never reused.
const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	nick    TEXT NOT NULL,
	nickkey TEXT NOT NULL UNIQUE,
	pwhash  TEXT NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
	recipient INTEGER NOT NULL,
	id        INTEGER NOT NULL,
	kind      TEXT NOT NULL,
	sender    INTEGER NOT NULL,
	nick      TEXT NOT NULL,
	time      INTEGER NOT NULL,
	body      TEXT NOT NULL,
	PRIMARY KEY (recipient, id)
);
CREATE TABLE IF NOT EXISTS profiles (
	user    INTEGER PRIMARY KEY,
	sex     TEXT NOT NULL DEFAULT '',
	age     INTEGER NOT NULL DEFAULT 0,
	address TEXT NOT NULL DEFAULT '',
	status  TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS friends (
	user   INTEGER NOT NULL,
	friend INTEGER NOT NULL,
	since  INTEGER NOT NULL,
	PRIMARY KEY (user, friend)
);
CREATE TABLE IF NOT EXISTS friend_requests (
	sender    INTEGER NOT NULL,
	recipient INTEGER NOT NULL,
	time      INTEGER NOT NULL,
	PRIMARY KEY (sender, recipient)
);
CREATE TABLE IF NOT EXISTS blocks (
	user    INTEGER NOT NULL,
	blocked INTEGER NOT NULL,
	PRIMARY KEY (user, blocked)
);
CREATE TABLE IF NOT EXISTS chatgroups (
	name    TEXT NOT NULL,
	namekey TEXT PRIMARY KEY,
	owner   INTEGER NOT NULL,
	invite  INTEGER NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
	namekey TEXT NOT NULL,
	user    INTEGER NOT NULL,
	joined  INTEGER NOT NULL,
	PRIMARY KEY (namekey, user)
);
CREATE TABLE IF NOT EXISTS invites (
	namekey TEXT NOT NULL,
	user    INTEGER NOT NULL,
	inviter INTEGER NOT NULL,
	time    INTEGER NOT NULL,
	PRIMARY KEY (namekey, user)
);
`

// schemaSent came with client ids: what a resend is recognised by.
const schemaSent = `
CREATE INDEX IF NOT EXISTS inbox_cid ON inbox (sender, cid) WHERE cid <> '';
CREATE TABLE IF NOT EXISTS sent_ids (
	sender INTEGER NOT NULL,
	cid    TEXT NOT NULL,
	msgid  INTEGER NOT NULL,
	time   INTEGER NOT NULL,
	PRIMARY KEY (sender, cid)
);
`

// schemaGroups came with group cursors (members.acked).
const schemaGroups = `
CREATE TABLE IF NOT EXISTS group_msgs (
	id      INTEGER PRIMARY KEY,
	namekey TEXT NOT NULL,
	sender  INTEGER NOT NULL,
	nick    TEXT NOT NULL,
	time    INTEGER NOT NULL,
	body    TEXT NOT NULL,
	cid     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS group_msgs_key ON group_msgs (namekey, id);
CREATE INDEX IF NOT EXISTS group_msgs_cid ON group_msgs (sender, cid) WHERE cid <> '';
`

// legacy is version 1: it makes what is missing, as the code before
// versions did at every open: the tables, the client-id column, the group
// cursors (moving per-member copies into one row each), and the seed of
// account ids.
func legacy(ctx context.Context, tx sqlstore.Querier) error {
	if err := tx.Exec(ctx, schema); err != nil {
		return err
	}
	if tx.Exec(ctx, `SELECT cid FROM inbox LIMIT 0`) != nil {
		if err := tx.Exec(ctx, `ALTER TABLE inbox ADD COLUMN cid TEXT NOT NULL DEFAULT ''`); err != nil {
			return err
		}
	}
	if err := tx.Exec(ctx, schemaSent); err != nil {
		return err
	}
	if tx.Exec(ctx, `SELECT acked FROM members LIMIT 0`) != nil {
		if err := groupCursors(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Exec(ctx, schemaGroups); err != nil {
		return err
	}
	// AUTOINCREMENT never reuses an id; seed it so the first account is 1000.
	return tx.Exec(ctx, `INSERT INTO sqlite_sequence (name, seq)
		SELECT 'users', $1 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users')`, store.FirstUserID-1)
}

// groupCursors upgrades a database made before group cursors: every
// member's cursor starts at the highest message id ever reserved, and the
// per-member copies of group messages (inbox rows of kind GMSG) become one
// group_msgs row each, with each member's cursor put just below its first
// copy still waiting. Copies for someone no longer a member stay in the
// inbox, delivered as before.
func groupCursors(ctx context.Context, tx sqlstore.Querier) error {
	if err := tx.Exec(ctx, `ALTER TABLE members ADD COLUMN acked INTEGER NOT NULL DEFAULT 0`); err != nil {
		return err
	}
	if err := tx.Exec(ctx, schemaGroups); err != nil {
		return err
	}
	var hi sql.NullInt64
	if err := tx.QueryRow(ctx, `SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'msgid_hi'`).Scan(&hi); err != nil && err != sql.ErrNoRows {
		return err
	}
	if err := tx.Exec(ctx, `UPDATE members SET acked = $1`, hi.Int64); err != nil {
		return err
	}
	type cursorKey struct {
		user  int64
		group string
	}
	member := make(map[cursorKey]bool)
	if err := sqlstore.EachRow(ctx, tx, `SELECT namekey, user FROM members`, nil, func(r sqlstore.Rows) error {
		var k cursorKey
		err := r.Scan(&k.group, &k.user)
		member[k] = true
		return err
	}); err != nil {
		return err
	}
	first := make(map[cursorKey]int64) // a member's first waiting copy
	var moved []store.Item
	if err := sqlstore.EachRow(ctx, tx, `SELECT recipient, id, sender, nick, time, body, cid FROM inbox WHERE kind = 'GMSG' ORDER BY id`, nil, func(r sqlstore.Rows) error {
		var m store.Item
		var ms int64
		if err := r.Scan(&m.Recipient, &m.ID, &m.Sender, &m.Nick, &ms, &m.Body, &m.CID); err != nil {
			return err
		}
		m.Time = time.UnixMilli(ms)
		name, _, _ := strings.Cut(m.Body, " ")
		m.GroupKey = store.GroupKey(strings.TrimPrefix(name, "#"))
		k := cursorKey{m.Recipient, m.GroupKey}
		if !member[k] {
			return nil
		}
		if _, ok := first[k]; !ok {
			first[k] = m.ID
		}
		moved = append(moved, m)
		return nil
	}); err != nil {
		return err
	}
	var stmts []sqlstore.Stmt
	for _, m := range moved {
		stmts = append(stmts, sqlstore.SaveGroupRow(m))
	}
	for k, id := range first {
		stmts = append(stmts, sqlstore.Stmt{Q: `UPDATE members SET acked = $1 WHERE namekey = $2 AND user = $3`, Args: []any{id - 1, k.group, k.user}})
	}
	for _, m := range moved {
		stmts = append(stmts, sqlstore.Stmt{Q: `DELETE FROM inbox WHERE recipient = $1 AND id = $2`, Args: []any{m.Recipient, m.ID}})
	}
	return tx.ExecBatch(ctx, stmts)
}

package postgres

import (
	"context"

	"qchat/modes/serve/store/internal/sqlstore"
)

// The schema steps of PostgreSQL (sqlstore.Migrate), numbered as SQLite's:
// version N is the same tables in both. Differences of dialect only:
// BIGINT everywhere (pgx refuses an int64 past 2^31 for an INTEGER
// column), ids by identity from 1000 (gaps possible, never reused),
// BOOLEAN for a flag, and "user" quoted (a reserved word here).
var migrations = []sqlstore.Migration{
	{Version: 1, What: "accounts, social, inbox, client ids, group messages with cursors", Up: base},
	{Version: 2, What: "message ids in counters", Up: sqlstore.Counters},
	{Version: 3, What: "members by user", Up: sqlstore.MembersByUser},
	{Version: 4, What: "receipts and typing settings", Up: sqlstore.Settings("BOOLEAN")},
	{Version: 6, What: "history archive", Up: sqlstore.ArchiveTable("BIGINT")},
	{Version: 7, What: "offline files", Up: sqlstore.OfflineTable("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT")},
	{Version: 8, What: "spent resumption tokens", Up: sqlstore.TokensTable("BIGINT")},
}

func base(ctx context.Context, tx sqlstore.Querier) error {
	return sqlstore.ExecEach(ctx, tx,
		`CREATE TABLE meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL)`,
		`CREATE TABLE users (
			id      BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 1000) PRIMARY KEY,
			nick    TEXT NOT NULL,
			nickkey TEXT NOT NULL UNIQUE,
			pwhash  TEXT NOT NULL,
			created BIGINT NOT NULL)`,
		`CREATE TABLE inbox (
			recipient BIGINT NOT NULL,
			id        BIGINT NOT NULL,
			kind      TEXT NOT NULL,
			sender    BIGINT NOT NULL,
			nick      TEXT NOT NULL,
			time      BIGINT NOT NULL,
			body      TEXT NOT NULL,
			cid       TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (recipient, id))`,
		`CREATE INDEX inbox_cid ON inbox (sender, cid) WHERE cid <> ''`,
		`CREATE TABLE sent_ids (
			sender BIGINT NOT NULL,
			cid    TEXT NOT NULL,
			msgid  BIGINT NOT NULL,
			time   BIGINT NOT NULL,
			PRIMARY KEY (sender, cid))`,
		`CREATE TABLE profiles (
			"user"  BIGINT PRIMARY KEY,
			sex     TEXT NOT NULL DEFAULT '',
			age     BIGINT NOT NULL DEFAULT 0,
			address TEXT NOT NULL DEFAULT '',
			status  TEXT NOT NULL DEFAULT '')`,
		`CREATE TABLE friends (
			"user" BIGINT NOT NULL,
			friend BIGINT NOT NULL,
			since  BIGINT NOT NULL,
			PRIMARY KEY ("user", friend))`,
		`CREATE TABLE friend_requests (
			sender    BIGINT NOT NULL,
			recipient BIGINT NOT NULL,
			time      BIGINT NOT NULL,
			PRIMARY KEY (sender, recipient))`,
		`CREATE TABLE blocks (
			"user"  BIGINT NOT NULL,
			blocked BIGINT NOT NULL,
			PRIMARY KEY ("user", blocked))`,
		`CREATE TABLE chatgroups (
			name    TEXT NOT NULL,
			namekey TEXT PRIMARY KEY,
			owner   BIGINT NOT NULL,
			invite  BOOLEAN NOT NULL,
			created BIGINT NOT NULL)`,
		`CREATE TABLE members (
			namekey TEXT NOT NULL,
			"user"  BIGINT NOT NULL,
			joined  BIGINT NOT NULL,
			acked   BIGINT NOT NULL DEFAULT 0,
			PRIMARY KEY (namekey, "user"))`,
		`CREATE TABLE invites (
			namekey TEXT NOT NULL,
			"user"  BIGINT NOT NULL,
			inviter BIGINT NOT NULL,
			time    BIGINT NOT NULL,
			PRIMARY KEY (namekey, "user"))`,
		`CREATE TABLE group_msgs (
			id      BIGINT PRIMARY KEY,
			namekey TEXT NOT NULL,
			sender  BIGINT NOT NULL,
			nick    TEXT NOT NULL,
			time    BIGINT NOT NULL,
			body    TEXT NOT NULL,
			cid     TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX group_msgs_key ON group_msgs (namekey, id)`,
		`CREATE INDEX group_msgs_cid ON group_msgs (sender, cid) WHERE cid <> ''`,
	)
}

package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// Migrations: a dialect's schema is a numbered list of steps; the table
// schema_version records each step applied (version, what, when). At open
// the steps past the recorded version run, all in one transaction with
// their records: a database is at one version or the one before, never in
// between. Both dialects number the same change the same: version N means
// the same tables in SQLite and PostgreSQL.

// Migration is one step of a dialect's schema.
type Migration struct {
	Version int
	What    string
	Up      func(ctx context.Context, tx Querier) error
}

// Migrate brings the database to the last step of ms and returns the
// versions it was at and is at now. lock, when not "", runs first in the
// transaction (PostgreSQL: an advisory lock, so that nodes starting at
// once migrate one after the other and the second finds nothing to do).
// A database at a version newer than ms knows is refused: an older qchat
// must not write to a schema it does not know.
func Migrate(ctx context.Context, d Dialect, lock string, ms []Migration) (from, to int, err error) {
	tx, err := d.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if lock != "" {
		if err := tx.Exec(ctx, lock); err != nil {
			return 0, 0, fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version BIGINT PRIMARY KEY,
		what    TEXT NOT NULL,
		applied BIGINT NOT NULL)`); err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&from); err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	last := ms[len(ms)-1].Version
	if from > last {
		return from, from, fmt.Errorf("the database is at schema version %d, newer than this qchat knows (%d): run a newer qchat", from, last)
	}
	for _, m := range ms {
		if m.Version <= from {
			continue
		}
		if err := m.Up(ctx, tx); err != nil {
			return from, from, fmt.Errorf("migrate to version %d (%s): %w", m.Version, m.What, err)
		}
		if err := tx.Exec(ctx, `INSERT INTO schema_version (version, what, applied) VALUES ($1, $2, $3)`,
			m.Version, m.What, time.Now().Unix()); err != nil {
			return from, from, fmt.Errorf("migrate to version %d: %w", m.Version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return from, from, fmt.Errorf("migrate: commit: %w", err)
	}
	return from, last, nil
}

// Counters is version 2 of both dialects: the message-id high-water mark
// moves from a text value in meta to a counter row (counters.msgid) that
// one UPDATE ... RETURNING moves up atomically, also for writers of
// several nodes; meta had nothing else and goes.
func Counters(ctx context.Context, tx Querier) error {
	// One statement at a time: a batch would prepare the INSERT before the
	// table it names exists.
	return ExecEach(ctx, tx,
		`CREATE TABLE counters (
			name  TEXT PRIMARY KEY,
			value BIGINT NOT NULL)`,
		`INSERT INTO counters (name, value)
			SELECT 'msgid', COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'msgid_hi'), 0)`,
		`DROP TABLE meta`)
}

// ExecEach runs statements one at a time (DDL: each may need the one before).
func ExecEach(ctx context.Context, tx Querier, qs ...string) error {
	for _, q := range qs {
		if err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// MembersByUser is version 3 of both dialects: the members of a group are
// found by user too (a login reads its groups' stored messages).
func MembersByUser(ctx context.Context, tx Querier) error {
	return tx.Exec(ctx, `CREATE INDEX members_user ON members ("user")`)
}

// Settings is version 4: a user's receipts and typing settings, with
// the profile (store.Profile.NoReceipts, NoTyping); off is true, so that
// every account made before has both on. boolean is the dialect's type
// for a flag.
func Settings(boolean string) func(ctx context.Context, tx Querier) error {
	return func(ctx context.Context, tx Querier) error {
		return ExecEach(ctx, tx,
			`ALTER TABLE profiles ADD COLUMN no_receipts `+boolean+` NOT NULL DEFAULT FALSE`,
			`ALTER TABLE profiles ADD COLUMN no_typing `+boolean+` NOT NULL DEFAULT FALSE`)
	}
}

// Package sqlstore is the store both databases share: one Store over a
// Dialect, with the statements (one SQL for SQLite and PostgreSQL: $N
// placeholders, the column "user" quoted, upserts by ON CONFLICT, ids by
// RETURNING), the writer that commits in groups, and the migration runner.
//
// A dialect (store/sqlite, store/postgres) gives it connections, its DDL
// (ids and types differ: migrations are per dialect) and how to read its
// errors. sqlstore must not know which database it talks to: where the two
// differ in more than that, the difference belongs in the dialect.
package sqlstore

import (
	"context"
)

// Querier runs statements: the readers outside the writer, or the
// writer's transaction.
type Querier interface {
	Exec(ctx context.Context, q string, args ...any) error
	// ExecBatch runs stmts in order; PostgreSQL sends them in one round
	// trip. The first error ends it.
	ExecBatch(ctx context.Context, stmts []Stmt) error
	Query(ctx context.Context, q string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) Row
}

// Stmt is one statement of an ExecBatch.
type Stmt struct {
	Q    string
	Args []any
}

// Rows and Row are what database/sql and pgx both offer.
type (
	Rows interface {
		Next() bool
		Scan(dest ...any) error
		Err() error
		Close()
	}
	Row interface {
		Scan(dest ...any) error
	}
)

// Tx is a write transaction.
type Tx interface {
	Querier
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Dialect is one database behind the shared store.
type Dialect interface {
	// Begin starts a write transaction. Only the writer goroutine calls
	// it, one transaction at a time.
	Begin(ctx context.Context) (Tx, error)
	// Reader runs reads outside the writer (a pool).
	Reader() Querier
	// IsUnique says whether err is a unique-constraint violation.
	IsUnique(err error) bool
	// IsRetryable says whether err, from a statement before COMMIT, ended
	// a transaction that is worth running again as it was: a deadlock or a
	// serialization failure (writers of several nodes on one database), or
	// a connection found dead (the database restarted since it was last
	// used: the next try takes a new one).
	IsRetryable(err error) bool
	// Close closes the connections.
	Close() error
}

// EachRow runs scan for every row of a query.
func EachRow(ctx context.Context, db Querier, q string, args []any, scan func(Rows) error) error {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

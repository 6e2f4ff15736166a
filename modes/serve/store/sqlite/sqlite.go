// Package sqlite is the default store: an SQLite database in the server's
// data folder (qchat.db), pure Go (modernc.org/sqlite, no cgo), nothing to
// install. It owns the file, its durability settings (WAL; synchronous
// FULL survives a power cut, NORMAL a killed process) and its schema
// steps, including the upgrade of a data folder made before schema
// versions; the statements and the writer are the shared ones
// (store/internal/sqlstore).
//
// One connection writes, only from the store's writer goroutine, with
// BEGIN IMMEDIATE: SQLite has one writer at a time anyway, and group
// commit makes a burst one transaction. Readers have a small pool of their
// own; in WAL mode they never wait for the writer. It must not be opened
// by two processes at once: the server's data-folder lock sees to that.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/internal/sqlstore"
)

// Store is the SQLite store of a data folder.
type Store struct {
	*sqlstore.Store
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database in dir and brings its
// schema up to date. sync is the synchronous level: "full" or "normal".
func Open(dir, sync string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	path := filepath.Join(dir, "qchat.db")
	level := map[string]string{"full": "FULL", "normal": "NORMAL"}[sync]
	if level == "" {
		return nil, fmt.Errorf("sync level %q: want full or normal", sync)
	}
	dsn := func(extra string) string {
		return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(" + level + ")" + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	r.SetMaxOpenConns(4)
	d := &dialect{w: w, r: r}
	var old int // tables of a data folder from before schema versions
	if err := r.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'`).Scan(&old); err != nil {
		d.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	from, to, err := sqlstore.Migrate(context.Background(), d, "", migrations)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	switch {
	case from == 0 && old == 0:
		log.Info("store: new database", "path", path, "schema", to)
	case from != to:
		log.Info("store: schema upgraded", "path", path, "from", from, "to", to)
	}
	return &Store{sqlstore.New(d, log)}, nil
}

// dialect is database/sql over modernc's driver.
type dialect struct {
	w *sql.DB // one connection, used only by the writer goroutine
	r *sql.DB // readers
}

func (d *dialect) Begin(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{querier{tx}, tx}, nil
}

func (d *dialect) Reader() sqlstore.Querier { return querier{d.r} }

func (d *dialect) IsUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// IsRetryable: one writer, nobody to deadlock with.
func (d *dialect) IsRetryable(error) bool { return false }

func (d *dialect) Close() error { return errors.Join(d.w.Close(), d.r.Close()) }

// execQuerier is what *sql.DB and *sql.Tx share.
type execQuerier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	PrepareContext(ctx context.Context, q string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type querier struct{ db execQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) error {
	_, err := q.db.ExecContext(ctx, query, args...)
	return err
}

// ExecBatch prepares each distinct statement once: a batch is mostly the
// same INSERT or DELETE many times.
func (q querier) ExecBatch(ctx context.Context, stmts []sqlstore.Stmt) error {
	var prepared map[string]*sql.Stmt
	defer func() {
		for _, p := range prepared {
			p.Close()
		}
	}()
	for _, s := range stmts {
		p := prepared[s.Q]
		if p == nil {
			var err error
			if p, err = q.db.PrepareContext(ctx, s.Q); err != nil {
				return err
			}
			if prepared == nil {
				prepared = make(map[string]*sql.Stmt)
			}
			prepared[s.Q] = p
		}
		if _, err := p.ExecContext(ctx, s.Args...); err != nil {
			return err
		}
	}
	return nil
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return q.db.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type sqlTx struct {
	querier
	tx *sql.Tx
}

func (t sqlTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) Rollback(context.Context) error { return t.tx.Rollback() }

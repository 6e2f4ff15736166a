// Package postgres is the store on PostgreSQL (qchat serve --store
// postgres://...): for a server whose data must live off its host, on a
// database its operator already backs up and watches. It owns the
// connections (pgx, no cgo: a pool for reads, one connection for the
// writer, one that holds the node's lock), PostgreSQL's schema steps, and
// how to read its errors; the statements and the writer are the shared
// ones (store/internal/sqlstore), so it behaves as the SQLite store does,
// which storetest checks.
//
// Durability is the database's: a commit returns once PostgreSQL has it
// under its own synchronous_commit (on by default: flushed to its WAL).
// One qchat serve uses a database (a schema) at a time: Open takes an
// advisory lock for the process's life, as the SQLite store's data folder
// is locked, since a server keeps accounts and groups in memory and would
// not see another's changes. The nodes of a cluster (serve --cluster),
// which tell each other of their changes, share it: OpenNode takes the
// same lock shared, so that a lone server and a cluster never meet on one
// schema.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/internal/sqlstore"
)

// Store is the PostgreSQL store.
type Store struct {
	*sqlstore.Store
	d *dialect
}

var _ store.Store = (*Store)(nil)

// Advisory lock keys (the first of two int4 keys; the second is a hash of
// the schema, so that stores in different schemas of one database do not
// meet).
const (
	lockMigrate = 0x71636d67 // "qcmg": one node migrates at a time
	lockNode    = 0x71636e64 // "qcnd": one node uses the store
)

// Open connects to the database at url (postgres://user@host:port/db?...;
// a password belongs in ~/.pgpass or PGPASSWORD, not in a URL that ps
// shows), takes the store's lock, and brings the schema up to date. The
// URL's search_path picks a schema; pool_max_conns sizes the read pool
// (default max(4, CPUs)).
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	return open(ctx, url, false, log)
}

// OpenNode is Open for a node of a cluster: the lock is shared with the
// other nodes, and refused to a lone server.
func OpenNode(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	return open(ctx, url, true, log)
}

func open(ctx context.Context, url string, shared bool, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", Redact(url), err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false } // connLost
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "qchat serve"
	}
	where := describe(cfg.ConnConfig)
	d := &dialect{}
	fail := func(err error) (*Store, error) {
		d.Close()
		return nil, fmt.Errorf("store %s: %w", where, err)
	}
	if d.lockConn, err = lockStore(ctx, cfg.ConnConfig, shared); err != nil {
		return fail(err)
	}
	wcfg := cfg.Copy()
	wcfg.MaxConns, wcfg.MinConns = 1, 1
	if d.w, err = pgxpool.NewWithConfig(ctx, wcfg); err != nil {
		return fail(err)
	}
	if d.r, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fail(err)
	}
	lock := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d, %d)", lockMigrate, d.schemaKey)
	from, to, err := sqlstore.Migrate(ctx, d, lock, migrations)
	if err != nil {
		return fail(err)
	}
	switch {
	case from == 0:
		log.Info("store: new database", "store", where, "schema", to)
	case from != to:
		log.Info("store: schema upgraded", "store", where, "from", from, "to", to)
	}
	return &Store{Store: sqlstore.New(d, log), d: d}, nil
}

// lockStore opens the connection that holds the store's lock for the
// life of the process, or says who holds it.
func lockStore(ctx context.Context, cc *pgx.ConnConfig, shared bool) (*lockConn, error) {
	cc = cc.Copy()
	host, _ := os.Hostname()
	cc.RuntimeParams["application_name"] = fmt.Sprintf("qchat serve on %s, pid %d", host, os.Getpid())
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	var schema, db string
	if err := conn.QueryRow(ctx, `SELECT current_schema(), current_database()`).Scan(&schema, &db); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	h := fnv.New32a()
	h.Write([]byte(schema))
	key := int32(h.Sum32())
	try, unlock := `SELECT pg_try_advisory_lock($1, $2)`, `SELECT pg_advisory_unlock($1, $2)`
	if shared {
		try, unlock = `SELECT pg_try_advisory_lock_shared($1, $2)`, `SELECT pg_advisory_unlock_shared($1, $2)`
	}
	var ok bool
	if err := conn.QueryRow(ctx, try, int32(lockNode), key).Scan(&ok); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if !ok {
		var who string
		err := conn.QueryRow(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 2`,
			int64(lockNode), int64(uint32(key))).Scan(&who)
		conn.Close(ctx)
		if err != nil || who == "" {
			who = "another qchat serve"
		}
		if shared {
			return nil, fmt.Errorf("schema %s is in use by %s, not a cluster node (one lone server per database schema)", schema, who)
		}
		return nil, fmt.Errorf("schema %s is in use by %s (one server per database schema; several need --cluster)", schema, who)
	}
	return &lockConn{conn: conn, schemaKey: key, unlock: unlock, deployment: db + "/" + schema}, nil
}

type lockConn struct {
	conn       *pgx.Conn
	schemaKey  int32
	unlock     string // the statement that lets the lock go
	deployment string // database/schema
}

// Deployment names what the store is, whoever connects to it and however:
// its database and schema ("test/qchat_1"). The nodes of a cluster derive
// their NATS subjects from it.
func (st *Store) Deployment() string { return st.d.deployment }

// describe names the database without its password, for logs and errors.
func describe(cc *pgx.ConnConfig) string {
	s := fmt.Sprintf("postgres://%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database)
	if sp := cc.RuntimeParams["search_path"]; sp != "" {
		s += "?search_path=" + sp
	}
	return s
}

// Redact returns url for a log line: the database it names, without a
// password (or, when it does not parse, nothing of it).
func Redact(url string) string {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return "postgres://(unparsable)"
	}
	return describe(cc)
}

// dialect is pgx: the pools, and the connection holding the lock.
type dialect struct {
	*lockConn
	r *pgxpool.Pool // readers
	w *pgxpool.Pool // the writer: one connection
}

// Begin takes the writer's connection; BEGIN goes with the transaction's
// first statements, in their round trip.
func (d *dialect) Begin(ctx context.Context) (sqlstore.Tx, error) {
	conn, err := d.w.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &pgTx{conn: conn}, nil
}

func (d *dialect) Reader() sqlstore.Querier { return reader{querier{d.r}, d.r} }

// reader runs a read once more when it met a dead connection, after
// closing every idle one (a restart of the database killed them all);
// reads change nothing: running one twice is harmless.
type reader struct {
	q    querier
	pool *pgxpool.Pool
}

func (r reader) Exec(ctx context.Context, q string, args ...any) error {
	return r.q.Exec(ctx, q, args...)
}

func (r reader) ExecBatch(ctx context.Context, stmts []sqlstore.Stmt) error {
	return r.q.ExecBatch(ctx, stmts)
}

func (r reader) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := r.q.db.Query(ctx, q, args...)
	if connLost(err) {
		r.pool.Reset()
		return r.q.Query(ctx, q, args...)
	}
	if err != nil {
		return nil, err
	}
	return &retryRows{r: r, ctx: ctx, sql: q, args: args, rows: rows}, nil
}

// retryRows is a read's rows; pgx reports most failures only once the
// rows are read, so the one more try happens here, as long as no row has
// come yet.
type retryRows struct {
	r    reader
	ctx  context.Context
	sql  string
	args []any
	rows pgx.Rows
	seen bool  // a row came: no second try
	done bool  // the second try was made
	err  error // its Query failed
}

func (x *retryRows) Next() bool {
	if x.err != nil {
		return false
	}
	if x.rows.Next() {
		x.seen = true
		return true
	}
	if x.seen || x.done || !connLost(x.rows.Err()) {
		return false
	}
	x.done = true
	x.rows.Close()
	x.r.pool.Reset()
	if x.rows, x.err = x.r.q.db.Query(x.ctx, x.sql, x.args...); x.err != nil {
		return false
	}
	return x.Next()
}

func (x *retryRows) Scan(dest ...any) error { return x.rows.Scan(dest...) }

func (x *retryRows) Err() error {
	if x.err != nil {
		return x.err
	}
	return x.rows.Err()
}

func (x *retryRows) Close() {
	if x.rows != nil {
		x.rows.Close()
	}
}

func (r reader) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return retryRow{r, ctx, q, args}
}

type retryRow struct {
	r    reader
	ctx  context.Context
	sql  string
	args []any
}

func (r retryRow) Scan(dest ...any) error {
	err := r.r.q.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	if connLost(err) {
		r.r.pool.Reset()
		return r.r.q.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	}
	return err
}

func (d *dialect) IsUnique(err error) bool { return sqlState(err) == "23505" }

// IsRetryable: a deadlock against another node's writer, a
// serialization failure, or a connection that died while idle.
func (d *dialect) IsRetryable(err error) bool {
	c := sqlState(err)
	return c == "40P01" || c == "40001" || connLost(err)
}

// connLost says whether err is a connection that is gone: PostgreSQL
// closed it (a restart: 57P01, class 08) or the network did. A pooled
// connection is only found dead when used (the pools do not ping before
// each use: that would cost a round trip each), so a read or a batch that
// meets one runs once more on a fresh one.
func connLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	var ne net.Error
	return pgconn.SafeToRetry(err) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func (d *dialect) Close() error {
	if d.r != nil {
		d.r.Close()
	}
	if d.w != nil {
		d.w.Close()
	}
	if d.lockConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Unlock first, and wait for it: closing alone ends the session,
		// but its backend lets the lock go a moment later, and a store
		// opened again at once would find it held.
		d.conn.Exec(ctx, d.unlock, int32(lockNode), d.schemaKey)
		return d.conn.Close(ctx)
	}
	return nil
}

// pgQuerier is what a pool and a transaction share.
type pgQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

type querier struct{ db pgQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) error {
	_, err := q.db.Exec(ctx, query, args...)
	return err
}

// ExecBatch sends the statements in one round trip (pgx pipelines a
// batch), so a batch of a thousand inserts costs one wait, not a thousand.
func (q querier) ExecBatch(ctx context.Context, stmts []sqlstore.Stmt) error {
	switch len(stmts) {
	case 0:
		return nil
	case 1:
		return q.Exec(ctx, stmts[0].Q, stmts[0].Args...)
	}
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.Q, s.Args...)
	}
	br := q.db.SendBatch(ctx, b)
	for range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return q.db.Query(ctx, query, args...)
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return q.db.QueryRow(ctx, query, args...)
}

// pgTx is a transaction on the writer's connection that sends BEGIN
// only with its first statement (pgx's own Begin waits for it), and
// COMMIT only if it began.
type pgTx struct {
	conn  *pgxpool.Conn
	begun bool
}

func (t *pgTx) Exec(ctx context.Context, q string, args ...any) error {
	return t.ExecBatch(ctx, []sqlstore.Stmt{{Q: q, Args: args}})
}

func (t *pgTx) ExecBatch(ctx context.Context, stmts []sqlstore.Stmt) error {
	if !t.begun {
		stmts = append([]sqlstore.Stmt{{Q: "BEGIN"}}, stmts...)
		t.begun = true
	}
	return querier{t.conn}.ExecBatch(ctx, stmts)
}

func (t *pgTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	t.begun = true
	_, err := t.conn.Exec(ctx, "BEGIN")
	return err
}

func (t *pgTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.conn.Query(ctx, q, args...)
}

func (t *pgTx) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	if err := t.begin(ctx); err != nil {
		return errRow{err}
	}
	return t.conn.QueryRow(ctx, q, args...)
}

// Commit commits, and fails when PostgreSQL rolled back instead (a
// statement of the transaction had failed).
func (t *pgTx) Commit(ctx context.Context) error {
	return t.end(ctx, "COMMIT")
}

func (t *pgTx) Rollback(ctx context.Context) error {
	return t.end(ctx, "ROLLBACK")
}

// end sends COMMIT or ROLLBACK if the transaction began, and gives the
// connection back (a connection left inside a transaction, after a
// failure on the way, is closed by the pool).
func (t *pgTx) end(ctx context.Context, q string) error {
	if t.conn == nil {
		return nil
	}
	defer func() {
		t.conn.Release()
		t.conn = nil
	}()
	if !t.begun {
		return nil
	}
	tag, err := t.conn.Exec(ctx, q)
	if err == nil && q == "COMMIT" && tag.String() != "COMMIT" {
		err = fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

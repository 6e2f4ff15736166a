package serve

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// The store keeps what must survive a restart: accounts and the messages
// that are not yet acknowledged by their recipient. All writes go through
// one writer goroutine that commits whatever has queued up in a single
// transaction (group commit), so a burst of N writes costs one sync, not N.
// The SQL stays portable (no SQLite-only syntax in queries) so that a
// PostgreSQL store can take its place.

// Sentinel errors of the store; handlers map them to replies.
var (
	ErrNoUser    = errors.New("no such user")
	ErrNickTaken = errors.New("nickname taken")
)

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

// firstUserID is the id of the first account, as in the original QQ design.
const firstUserID = 1000

// User is one account as stored.
type User struct {
	ID      int64
	Nick    string
	PwHash  string
	Created time.Time
}

// Stored is one undelivered item of a recipient's inbox.
type Stored struct {
	Recipient int64
	ID        int64
	Kind      string // the event kind: MSG, GMSG, REQUEST or NOTICE
	Sender    int64
	Nick      string // the sender's nickname when it was sent
	Time      time.Time
	Body      string
}

// Store is the SQLite store in a data folder.
type Store struct {
	w    *sql.DB // the writer: one connection, used only by the writer goroutine
	r    *sql.DB // readers
	jobs chan *job
	done chan struct{}

	// Deletions wait here, not in jobs: they are queued from the writer's
	// own callbacks (a message acknowledged while it was being saved), and
	// a callback that waited for room in jobs would wait for itself.
	delMu sync.Mutex
	dels  []deletion
	wake  chan struct{} // a deletion is waiting (capacity 1, never blocks)

	// Log hears what the writer cannot report to anyone (slog.Default()
	// unless set before use).
	Log *slog.Logger

	closeOnce sync.Once
}

type deletion struct {
	recipient int64
	ids       []int64
}

// job is one unit of work for the writer; fn runs inside the batch's
// transaction, inside a savepoint when it may fail on its own.
type job struct {
	fn       func(tx *sql.Tx) error
	mayFail  bool
	callback func(error) // called after commit (or failure), from the writer
}

// OpenStore opens (creating if needed) the database in dir. sync is the
// SQLite synchronous level: "full" survives power loss, "normal" survives
// a killed process.
func OpenStore(dir, sync string) (*Store, error) {
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
	if _, err := w.Exec(schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// AUTOINCREMENT never reuses an id; seed it so the first account is 1000.
	if _, err := w.Exec(`INSERT INTO sqlite_sequence (name, seq)
		SELECT 'users', ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users')`, firstUserID-1); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store: seed ids: %w", err)
	}
	r, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r, jobs: make(chan *job, 4096), done: make(chan struct{}), wake: make(chan struct{}, 1), Log: slog.Default()}
	go s.writer()
	return s, nil
}

// Close finishes queued writes and closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.jobs)
		<-s.done
	})
	err1 := s.w.Close()
	err2 := s.r.Close()
	return errors.Join(err1, err2)
}

// maxBatch bounds one transaction, so one huge burst cannot hold the
// callbacks of its first jobs for long.
const maxBatch = 2048

// writer runs the jobs: it takes every job already queued (up to
// maxBatch) and every deletion waiting, runs them in one transaction,
// commits, then tells each job.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*job, 0, maxBatch)
	open := true
	for open {
		batch = batch[:0]
		select {
		case j, ok := <-s.jobs:
			if !ok {
				open = false
				break
			}
			batch = append(batch, j)
		case <-s.wake:
		}
	more:
		for open && len(batch) < maxBatch {
			select {
			case j, ok := <-s.jobs:
				if !ok {
					open = false
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		s.runBatch(batch, s.takeDeletions())
	}
	// Deletions queued by the last callbacks.
	if dels := s.takeDeletions(); len(dels) > 0 {
		s.runBatch(nil, dels)
	}
}

func (s *Store) takeDeletions() []deletion {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	d := s.dels
	s.dels = nil
	return d
}

func (s *Store) runBatch(batch []*job, dels []deletion) {
	if len(batch) == 0 && len(dels) == 0 {
		return
	}
	errs := make([]error, len(batch))
	tx, err := s.w.Begin()
	if err == nil {
		for i, j := range batch {
			errs[i] = runJob(tx, j)
		}
		if derr := deleteInbox(tx, dels); derr != nil {
			// The items stay and come again after a restart; clients
			// drop what they have seen by id.
			s.Log.Warn("store: delete acknowledged messages", "err", derr)
		}
		err = tx.Commit()
	}
	for i, j := range batch {
		e := errs[i]
		if err != nil {
			e = fmt.Errorf("store commit: %w", err)
		}
		if j.callback != nil {
			j.callback(e)
		}
	}
}

func runJob(tx *sql.Tx, j *job) error {
	if !j.mayFail {
		return j.fn(tx)
	}
	if _, err := tx.Exec("SAVEPOINT job"); err != nil {
		return err
	}
	if err := j.fn(tx); err != nil {
		tx.Exec("ROLLBACK TO job")
		tx.Exec("RELEASE job")
		return err
	}
	_, err := tx.Exec("RELEASE job")
	return err
}

// submit queues a job; callback (may be nil) runs on the writer goroutine
// after the commit and must not block.
func (s *Store) submit(fn func(*sql.Tx) error, mayFail bool, callback func(error)) {
	s.jobs <- &job{fn: fn, mayFail: mayFail, callback: callback}
}

// do runs fn in the next batch and waits for its commit.
func (s *Store) do(ctx context.Context, fn func(*sql.Tx) error) error {
	ch := make(chan error, 1)
	s.submit(fn, true, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CreateUser adds an account and returns its new id. The nickname is unique
// without regard to case.
func (s *Store) CreateUser(ctx context.Context, nick, pwhash string) (int64, error) {
	var id int64
	err := s.do(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO users (nick, nickkey, pwhash, created) VALUES (?, ?, ?, ?)`,
			nick, nickKey(nick), pwhash, time.Now().Unix())
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				return ErrNickTaken
			}
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	return id, err
}

// nickKey is the form in which nicknames are compared.
func nickKey(nick string) string { return strings.ToLower(nick) }

// UserByID looks an account up by id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	return s.user(ctx, `SELECT id, nick, pwhash, created FROM users WHERE id = ?`, id)
}

// UserByNick looks an account up by nickname (any case).
func (s *Store) UserByNick(ctx context.Context, nick string) (User, error) {
	return s.user(ctx, `SELECT id, nick, pwhash, created FROM users WHERE nickkey = ?`, nickKey(nick))
}

func (s *Store) user(ctx context.Context, q string, arg any) (User, error) {
	var u User
	var created int64
	err := s.r.QueryRowContext(ctx, q, arg).Scan(&u.ID, &u.Nick, &u.PwHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNoUser
	}
	u.Created = time.Unix(created, 0)
	return u, err
}

// SaveInbox queues items for durable storage; callback runs once they are
// committed (or failed).
func (s *Store) SaveInbox(items []Stored, callback func(error)) {
	s.submit(func(tx *sql.Tx) error {
		st, err := tx.Prepare(`INSERT INTO inbox (recipient, id, kind, sender, nick, time, body) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, m := range items {
			if _, err := st.Exec(m.Recipient, m.ID, m.Kind, m.Sender, m.Nick, m.Time.UnixMilli(), m.Body); err != nil {
				return err
			}
		}
		return nil
	}, false, callback)
}

// DeleteInbox queues the removal of acknowledged items; nothing waits,
// and it never blocks (it is called from the writer's own callbacks).
func (s *Store) DeleteInbox(recipient int64, ids []int64) {
	s.delMu.Lock()
	s.dels = append(s.dels, deletion{recipient, ids})
	s.delMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func deleteInbox(tx *sql.Tx, dels []deletion) error {
	if len(dels) == 0 {
		return nil
	}
	st, err := tx.Prepare(`DELETE FROM inbox WHERE recipient = ? AND id = ?`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, d := range dels {
		for _, id := range d.ids {
			if _, err := st.Exec(d.recipient, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// Inbox returns a recipient's stored items in id order.
func (s *Store) Inbox(ctx context.Context, recipient int64) ([]Stored, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, kind, sender, nick, time, body FROM inbox WHERE recipient = ? ORDER BY id`, recipient)
	if err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		m := Stored{Recipient: recipient}
		var ms int64
		if err := rows.Scan(&m.ID, &m.Kind, &m.Sender, &m.Nick, &ms, &m.Body); err != nil {
			return nil, fmt.Errorf("read inbox: %w", err)
		}
		m.Time = time.UnixMilli(ms)
		out = append(out, m)
	}
	return out, rows.Err()
}

// InboxCounts returns how many items each recipient has stored.
func (s *Store) InboxCounts(ctx context.Context) (map[int64]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT recipient, COUNT(*) FROM inbox GROUP BY recipient`)
	if err != nil {
		return nil, fmt.Errorf("count inbox: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]int)
	for rows.Next() {
		var r int64
		var n int
		if err := rows.Scan(&r, &n); err != nil {
			return nil, err
		}
		out[r] = n
	}
	return out, rows.Err()
}

// ReserveIDs durably moves the message-id high-water mark up by n and
// returns the range (lo, hi] now reserved. Ids handed out are never reused,
// also across restarts and crashes: a restart skips what was reserved.
func (s *Store) ReserveIDs(ctx context.Context, n int64) (lo, hi int64, err error) {
	err = s.do(ctx, func(tx *sql.Tx) error {
		var v sql.NullInt64
		err := tx.QueryRow(`SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'msgid_hi'`).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		lo = v.Int64
		hi = lo + n
		_, err = tx.Exec(`INSERT INTO meta (key, value) VALUES ('msgid_hi', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, fmt.Sprint(hi))
		return err
	})
	return lo, hi, err
}

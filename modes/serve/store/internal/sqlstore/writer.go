package sqlstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"qchat/modes/serve/store"
)

// The writer: every write goes through one goroutine that takes whatever
// has queued up (jobs, and the deletions and cursor moves of
// acknowledgements) and runs it in one transaction (group commit), so that
// a burst of N writes costs one commit, not N. A job that fails leaves
// the others of its batch alone: the batch runs again without it.

// Store is the shared store over a dialect; it implements store.Store.
type Store struct {
	d    Dialect
	log  *slog.Logger
	jobs chan *job
	done chan struct{}

	// Deletions wait here, not in jobs: they are queued from the writer's
	// own callbacks (a message acknowledged while it was being saved), and
	// a callback that waited for room in jobs would wait for itself.
	delMu sync.Mutex
	dels  []deletion
	wake  chan struct{} // a deletion is waiting (capacity 1, never blocks)

	pruned time.Time // when the writer last dropped old sent_ids (writer only)

	closeOnce sync.Once
	closeErr  error
}

// deletion is what an acknowledgement changes: a recipient's inbox rows
// to delete (with the client ids to keep), or, when cursor.group is set, a
// member's group cursor to move. Both wait in one list, applied in the
// order queued.
type deletion struct {
	recipient int64
	ids       []int64
	sent      []store.SentID
	cursor    cursorOp
}

// job is one unit of work for the writer: fn runs inside the batch's
// transaction, and runs again in another if a job beside it failed.
type job struct {
	fn       func(ctx context.Context, tx Querier) error
	callback func(error) // called after commit (or failure), from the writer
}

const (
	// maxBatch bounds one transaction, so one huge burst cannot hold the
	// callbacks of its first jobs for long.
	maxBatch = 2048
	// batchTimeout bounds one transaction: a database that stopped
	// answering fails the batch (its messages are answered "failed")
	// rather than holding every write behind it forever.
	batchTimeout = time.Minute
	// retries is how often a batch that lost a deadlock against another
	// node's writer runs again.
	retries = 5
)

// New starts the writer of a store over d, which is migrated already.
func New(d Dialect, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{d: d, log: log, jobs: make(chan *job, 4096), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go s.writer()
	return s
}

// Close finishes queued writes and closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.jobs)
		<-s.done
		s.closeErr = s.d.Close()
	})
	return s.closeErr
}

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

func (s *Store) queueDeletion(d deletion) {
	s.delMu.Lock()
	s.dels = append(s.dels, d)
	s.delMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) runBatch(batch []*job, dels []deletion) {
	prune := s.pruneDue()
	if len(batch) == 0 && len(dels) == 0 && !prune {
		return
	}
	errs := make([]error, len(batch)) // a job's own failure: it is left out of the next try
	var err error
	for tries := 0; ; {
		var failed int
		var again bool
		failed, again, err = s.tryBatch(batch, errs, dels, prune)
		switch {
		case err == nil && failed == delsFailed:
			dels, prune = nil, false // the rows stay and come again; clients drop them by id
		case err == nil && failed >= 0:
			// Run the others again, without it: nothing of it stays.
		case again && tries < retries:
			tries++
			s.log.Debug("store: batch runs again", "err", err)
		default:
			for i, j := range batch {
				e := errs[i]
				if e == nil && err != nil {
					e = err
				}
				if j.callback != nil {
					j.callback(e)
				}
			}
			return
		}
	}
}

const (
	allDone    = -1 // tryBatch committed, or err says why not
	delsFailed = -2 // tryBatch found the deletions failing
)

// tryBatch runs, in one transaction, the jobs that have not failed and
// the deletions. A job that fails gets its error in errs and ends the
// try: its index comes back, nothing is committed, and the caller tries
// again without it. So a failing job leaves nothing half done without a
// savepoint per job (two round trips each on PostgreSQL). err is what
// failed all of it; again says whether it is worth trying again as it
// was: never once COMMIT went out (it may have been applied).
func (s *Store) tryBatch(batch []*job, errs []error, dels []deletion, prune bool) (failed int, again bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	tx, err := s.d.Begin(ctx)
	if err != nil {
		return allDone, false, fmt.Errorf("store: begin: %w", err)
	}
	for i, j := range batch {
		if errs[i] != nil {
			continue
		}
		if err := j.fn(ctx, tx); err != nil {
			tx.Rollback(ctx)
			if s.d.IsRetryable(err) {
				return allDone, true, err
			}
			errs[i] = err
			return i, false, nil
		}
	}
	if len(dels) > 0 || prune {
		if err := deleteInbox(ctx, tx, dels, prune); err != nil {
			tx.Rollback(ctx)
			if s.d.IsRetryable(err) {
				return allDone, true, err
			}
			s.log.Warn("store: delete acknowledged messages", "err", err)
			return delsFailed, false, nil
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return allDone, false, fmt.Errorf("store commit: %w", err)
	}
	return allDone, false, nil
}

// submit queues a job; callback (may be nil) runs on the writer goroutine
// after the commit and must not block.
func (s *Store) submit(fn func(context.Context, Querier) error, callback func(error)) {
	s.jobs <- &job{fn: fn, callback: callback}
}

// do runs fn in the next batch and waits for its commit.
func (s *Store) do(ctx context.Context, fn func(context.Context, Querier) error) error {
	ch := make(chan error, 1)
	s.submit(fn, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exec runs statements in one job and waits for the commit.
func (s *Store) exec(ctx context.Context, stmts ...Stmt) error {
	return s.do(ctx, func(ctx context.Context, tx Querier) error {
		return tx.ExecBatch(ctx, stmts)
	})
}

// pruneDue says whether the writer should drop old sent_ids now: with
// the first batch, then at most once an hour.
func (s *Store) pruneDue() bool {
	now := time.Now()
	if now.Sub(s.pruned) < time.Hour {
		return false
	}
	s.pruned = now
	return true
}

// ExecSQL runs one statement through the writer and waits for its commit;
// QueryInt reads one integer. For tests and repairs by hand: the server
// never calls them.
func (s *Store) ExecSQL(ctx context.Context, q string, args ...any) error {
	return s.exec(ctx, Stmt{q, args})
}

// QueryInt: see ExecSQL.
func (s *Store) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := s.d.Reader().QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

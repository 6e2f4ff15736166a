package presence

import (
	"sync"
	"time"
)

// Log remembers who changed in each recent batch, so that a client that
// got a summary (or lost track) can ask for what changed since a version
// instead of the whole list. It is bounded: the oldest batches are
// forgotten first once it holds more than its limit of changes, and a
// version older than what it holds gets the whole list instead.
//
// Versions are never reused: the first is taken from the clock at start,
// so a version from before a restart is older than anything the log
// holds, and a client asking with it gets the whole list. Safe for
// concurrent use.
type Log struct {
	mu      sync.Mutex
	version uint64  // of the latest batch
	oldest  uint64  // LIST <v> is answerable for v >= oldest
	batches []entry // oldest first
	held    int     // changes in batches
	limit   int
}

type entry struct {
	version uint64
	users   []int64
}

// NewLog returns a log holding at most limit changes; its first version
// comes from start.
func NewLog(start time.Time, limit int) *Log {
	v := uint64(start.UnixMicro())
	return &Log{version: v, oldest: v, limit: max(limit, 1)}
}

// Version is the latest version: what a full list is as of.
func (l *Log) Version() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version
}

// Add gives b the next version and remembers who changed in it.
func (l *Log) Add(b *Batch) {
	users := make([]int64, len(b.Changes))
	for i, c := range b.Changes {
		users[i] = c.User
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.version++
	b.Version = l.version
	l.batches = append(l.batches, entry{l.version, users})
	l.held += len(users)
	for l.held > l.limit && len(l.batches) > 1 {
		l.held -= len(l.batches[0].users)
		l.oldest = l.batches[0].version
		l.batches[0] = entry{}
		l.batches = l.batches[1:]
	}
}

// Since returns the users who changed after version since, each once, and
// the latest version. ok is false when the log cannot tell (since is
// older than what it holds, or not one of its versions): the caller then
// gives the whole list.
func (l *Log) Since(since uint64) (users []int64, version uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since < l.oldest || since > l.version {
		return nil, l.version, false
	}
	seen := make(map[int64]struct{})
	for i := len(l.batches) - 1; i >= 0 && l.batches[i].version > since; i-- {
		for _, u := range l.batches[i].users {
			if _, dup := seen[u]; !dup {
				seen[u] = struct{}{}
				users = append(users, u)
			}
		}
	}
	return users, l.version, true
}

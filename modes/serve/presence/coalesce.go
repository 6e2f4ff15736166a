package presence

import (
	"sync"
	"time"
)

// Coalescer collects the users whose presence changed until the next
// batch is taken. It keeps only who changed, not how: the batch carries
// the state of the moment it is taken, so the latest state wins and a
// user's changes reach every watcher in order.
//
// Batches go out at most once per interval. A change after a quiet
// interval may go at once (Note says so); changes within an interval wait
// for its end. Safe for concurrent use.
type Coalescer struct {
	every time.Duration

	mu       sync.Mutex
	users    []int64
	in       map[int64]struct{}
	last     time.Time // when the last batch was taken
	lastNote time.Time // when the last change was noted
	due      bool      // the caller was told to take a batch (now or later)
}

// NewCoalescer returns a coalescer of one batch per every (0: every
// change may go at once).
func NewCoalescer(every time.Duration) *Coalescer {
	return &Coalescer{every: every, in: make(map[int64]struct{})}
}

// Note adds user to the next batch. When it returns now, the caller takes
// the batch at once; when it returns a wait above zero, the caller takes
// it after that wait. Otherwise a batch is due already (someone was told)
// and user goes with it.
func (c *Coalescer) Note(user int64, at time.Time) (now bool, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastNote = at
	if _, ok := c.in[user]; !ok {
		c.in[user] = struct{}{}
		c.users = append(c.users, user)
	}
	if c.due {
		return false, 0
	}
	c.due = true
	if next := c.last.Add(c.every); at.Before(next) {
		return false, next.Sub(at)
	}
	return true, 0
}

// Take returns the users noted since the last batch, in the order they
// were first noted, and starts the next interval at now.
func (c *Coalescer) Take(now time.Time) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	users := c.users
	c.users = nil
	if len(c.in) > 1024 {
		c.in = make(map[int64]struct{}) // give back what a storm grew
	} else {
		clear(c.in)
	}
	c.due = false
	if len(users) > 0 {
		c.last = now
	}
	return users
}

// SetInterval changes the interval, from the next change on (the server
// stretches it while batches are big).
func (c *Coalescer) SetInterval(every time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.every = every
}

// Settled reports whether changes wait and none came for quiet: a storm
// that stretched the interval is over, and its last batch need not wait
// for the stretched interval's end.
func (c *Coalescer) Settled(now time.Time, quiet time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.users) > 0 && now.Sub(c.lastNote) >= quiet
}

// Pending is how many users wait for the next batch.
func (c *Coalescer) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.users)
}

package limits

import (
	"sync"
	"time"
)

// Every lets one event per key through per interval and drops the others.
type Every[K comparable] struct {
	every time.Duration
	mu    sync.Mutex
	last  map[K]time.Time
}

// NewEvery returns a limiter of one event per key per every.
func NewEvery[K comparable](every time.Duration) *Every[K] {
	return &Every[K]{every: every, last: make(map[K]time.Time)}
}

// Allow reports whether key's event at now may go, and if so counts it.
func (e *Every[K]) Allow(key K, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.last[key]; ok && now.Sub(t) < e.every {
		return false
	}
	e.last[key] = now
	return true
}

// Sweep forgets the keys whose interval is over at now.
func (e *Every[K]) Sweep(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, t := range e.last {
		if now.Sub(t) >= e.every {
			delete(e.last, k)
		}
	}
}

// Len is how many keys are remembered.
func (e *Every[K]) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.last)
}

// Coalescer lets one event per key through per interval; the events that
// come sooner are merged into one that falls due when the interval is
// over. It keeps no event, only its key: whoever sends a due one sends
// the state of that moment, so the latest state wins.
type Coalescer[K comparable] struct {
	every time.Duration
	mu    sync.Mutex
	last  map[K]time.Time // when key last sent
	due   map[K]time.Time // keys held back, and when they may go
}

// NewCoalescer returns a coalescer of one event per key per every.
func NewCoalescer[K comparable](every time.Duration) *Coalescer[K] {
	return &Coalescer[K]{every: every, last: make(map[K]time.Time), due: make(map[K]time.Time)}
}

// Note says that key has an event at now: true means send it now; false
// means it is held back and Due will return key once its time comes.
func (c *Coalescer[K]) Note(key K, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.last[key]
	if !ok || now.Sub(t) >= c.every {
		c.last[key] = now
		delete(c.due, key)
		return true
	}
	c.due[key] = t.Add(c.every)
	return false
}

// Sent says that key's event went out at now without asking (an event
// that must not wait): what was held back is covered by it, and the next
// one waits for the interval.
func (c *Coalescer[K]) Sent(key K, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last[key] = now
	delete(c.due, key)
}

// Due returns the keys whose held-back event may go at now (in no
// particular order) and counts them as sent at now. It also forgets the
// keys whose interval is over.
func (c *Coalescer[K]) Due(now time.Time) []K {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []K
	for k, t := range c.due {
		if !t.After(now) {
			out = append(out, k)
			delete(c.due, k)
			c.last[k] = now
		}
	}
	for k, t := range c.last {
		if _, held := c.due[k]; !held && now.Sub(t) >= c.every {
			delete(c.last, k)
		}
	}
	return out
}

// Len is how many keys are remembered, and how many of them are held back.
func (c *Coalescer[K]) Len() (keys, held int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.last), len(c.due)
}

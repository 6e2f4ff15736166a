// Package dedupe remembers, for each sender, the client ids of its latest
// messages (the id=<cid> of MSG), so that a message sent again after a lost
// connection (resend=<cid>) is recognised instead of delivered twice.
//
// It owns that memory (Table: bounded per sender, dropped for senders that
// have been quiet for a while) and the journal file that lets it outlive a
// killed server (Journal). It knows nothing of sessions, mailboxes or the
// store: what the table keeps for an id is the caller's value. A resend it
// has forgotten is for the caller to look up elsewhere (the store keeps
// the ids of stored messages).
package dedupe

import (
	"sync"
	"time"
)

// shards spreads senders over locks, so that senders on many sessions do
// not queue on one mutex.
const shards = 64

// Table maps (sender, client id) to a value of the caller's. Safe for
// concurrent use.
type Table[V any] struct {
	keep   int
	shards [shards]shard[V]
}

type shard[V any] struct {
	mu      sync.Mutex
	senders map[int64]*ring[V]
}

// ring holds a sender's latest ids, oldest overwritten first. It grows to
// keep entries only as the sender sends, so a sender with few messages
// costs little.
type ring[V any] struct {
	cids []string
	vals []V
	next int       // where the next Put goes once the ring is full
	used time.Time // the last Put
}

// New returns a table that remembers the last keep ids of each sender.
func New[V any](keep int) *Table[V] {
	t := &Table[V]{keep: max(keep, 1)}
	for i := range t.shards {
		t.shards[i].senders = make(map[int64]*ring[V])
	}
	return t
}

func (t *Table[V]) shard(sender int64) *shard[V] {
	return &t.shards[uint64(sender)%shards]
}

// Put remembers v for sender's client id cid at time now. A later Put of
// the same cid shadows the earlier one.
func (t *Table[V]) Put(sender int64, cid string, v V, now time.Time) {
	sh := t.shard(sender)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.senders[sender]
	if r == nil {
		r = &ring[V]{}
		sh.senders[sender] = r
	}
	r.used = now
	if len(r.cids) < t.keep {
		r.cids = append(r.cids, cid)
		r.vals = append(r.vals, v)
		return
	}
	r.cids[r.next], r.vals[r.next] = cid, v
	r.next = (r.next + 1) % len(r.cids)
}

// Get returns what was put last for sender's cid, if it is still
// remembered. It scans the sender's ring: it is meant for resends, which
// are rare, not for every message.
func (t *Table[V]) Get(sender int64, cid string) (V, bool) {
	sh := t.shard(sender)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var zero V
	r := sh.senders[sender]
	if r == nil {
		return zero, false
	}
	n := len(r.cids)
	// Newest first: the slot before next, backwards.
	for k := 1; k <= n; k++ {
		i := ((r.next-k)%n + n) % n
		if r.cids[i] == cid {
			return r.vals[i], true
		}
	}
	return zero, false
}

// Sweep forgets the senders that put nothing since before. It returns how
// many it forgot.
func (t *Table[V]) Sweep(before time.Time) int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for sender, r := range sh.senders {
			if r.used.Before(before) {
				delete(sh.senders, sender)
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

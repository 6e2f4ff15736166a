package serve

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"qchat/modes/serve/store"
)

// idBlock is how many message ids one durable reservation covers.
const idBlock = 1 << 20

// idAlloc hands out message ids: increasing, never reused across restarts.
// It reserves blocks in the store ahead of need, so Next almost never waits.
type idAlloc struct {
	store store.Store
	log   *slog.Logger

	mu        sync.Mutex
	cond      *sync.Cond
	next, hi  int64 // next id to give; ids up to hi are reserved
	reserving bool
}

func newIDAlloc(ctx context.Context, st store.Store, log *slog.Logger) (*idAlloc, error) {
	lo, hi, err := st.ReserveIDs(ctx, idBlock)
	if err != nil {
		return nil, err
	}
	a := &idAlloc{store: st, log: log, next: lo + 1, hi: hi}
	a.cond = sync.NewCond(&a.mu)
	return a, nil
}

// Next returns a fresh id. It blocks only when the reserved block is used up
// before the next reservation has committed: never call it with a mailbox
// locked, as the store's writer may need that mailbox before it gets to
// the reservation (use TryNext and Wait).
func (a *idAlloc) Next() int64 {
	for {
		if id, ok := a.TryNext(); ok {
			return id
		}
		a.Wait()
	}
}

// TryNext returns a fresh id, or false when the reserved block is used up
// before the next reservation has committed.
func (a *idAlloc) TryNext() (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reserveAheadLocked()
	if a.next > a.hi {
		return 0, false
	}
	id := a.next
	a.next++
	return id, true
}

// Last returns the last id given out (or below every id to come).
func (a *idAlloc) Last() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.next - 1
}

// Wait waits until there are ids to give.
func (a *idAlloc) Wait() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reserveAheadLocked()
	for a.next > a.hi {
		a.cond.Wait()
	}
}

func (a *idAlloc) reserveAheadLocked() {
	if !a.reserving && a.hi-a.next < idBlock/2 {
		a.reserving = true
		go a.reserve()
	}
}

func (a *idAlloc) reserve() {
	for {
		_, hi, err := a.store.ReserveIDs(context.Background(), idBlock)
		if err == nil {
			a.mu.Lock()
			a.hi = hi
			a.next = max(a.next, hi-idBlock+1)
			a.reserving = false
			a.cond.Broadcast()
			a.mu.Unlock()
			return
		}
		a.log.Error("reserve message ids", "err", err)
		time.Sleep(time.Second)
	}
}

// Above makes every id given from now on higher than x, reserving a new
// block (above every block reserved by any node) when the one in use is
// not. It blocks for the reservation; never call it with a mailbox
// locked. A node of a cluster calls it when a user logs in whose last
// message, sent through another node, took a higher id: a sender's ids
// keep increasing when it moves between nodes, and so does the order in
// which its messages reach each recipient.
func (a *idAlloc) Above(ctx context.Context, x int64) error {
	a.mu.Lock()
	if a.next > x {
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	lo, hi, err := a.store.ReserveIDs(ctx, idBlock)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if hi > a.hi {
		a.next, a.hi = max(a.next, lo+1), hi
	}
	return nil
}

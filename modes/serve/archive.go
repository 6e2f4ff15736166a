package serve

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"qchat/modes/serve/store"
)

// The history archive (serve --history-days N, PROTOCOL.md section 4,
// "History"), as XMPP's MAM keeps one: every private message once, every
// group message once for all its members, kept N days, so that a user's
// other devices, or a device that lost its files, can fetch the
// conversations again (HISTORY, history.go).
//
// Only a server that keeps history pays anything: postOffice.arch is nil
// otherwise, and the hot path checks that pointer and nothing else.
//
// With it on:
//
//   - A message is handed to the archiver when it takes its id, with its
//     mailbox locked; the archiver hands what queued up to the store in
//     one Archive call (the writer's group commit), never under a lock.
//   - The sender's 250 waits for the archive's commit too (onHold, and
//     one more share of a group message's fanout): a message its sender
//     was told is safe is in the archive, also after a SIGKILL, so every
//     device of the sender finds it.
//   - The watermark: ids are given out in order but may be committed out
//     of order (two batches). HISTORY returns nothing from the lowest id
//     given out and not yet archived up, so a client that syncs "after the
//     last id I have" never steps over a message committed later.

// archiver queues messages for the archive and keeps the watermark.
type archiver struct {
	po    *postOffice
	store store.Store
	log   *slog.Logger
	keep  time.Duration // --history-days
	now   func() time.Time

	mu      sync.Mutex
	queue   []archived
	pending []pendingID // ids given out and not yet archived (or not to be), in id order
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	writing sync.WaitGroup // batches handed to the store, not yet called back
}

// archived is one message on its way to the archive: a private message's
// entry (whose sender's answer waits for it), or a group message's item
// and fanout (which counts the archive as one more share).
type archived struct {
	item *store.Item
	e    *entry
	fan  *fanout
}

type pendingID struct {
	id   int64
	done bool
}

// onHold holds a private message's answer until it is archived.
// Guarded by its mailbox's lock.
type onHold struct {
	archived  bool
	held      bool
	how, mark string
}

// pruneEvery is how often the archiver drops what is older than --history-days.
const pruneEvery = time.Hour

func newArchiver(po *postOffice, keep time.Duration) *archiver {
	a := &archiver{po: po, store: po.store, log: po.log, keep: keep, now: time.Now,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// takeID gives a message id (ids.TryNext) and notes it pending: the
// watermark stays below it until it is archived (add) or skipped (not a
// message for the archive). Called with the message's mailboxes locked.
func (a *archiver) takeID(ids *idAlloc) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := ids.TryNext()
	if ok {
		a.pending = append(a.pending, pendingID{id: id})
	}
	return id, ok
}

// add queues a message; it never blocks (the caller holds mailboxes).
func (a *archiver) add(m archived) {
	if m.e != nil {
		m.e.wait = &onHold{}
	}
	a.mu.Lock()
	a.queue = append(a.queue, m)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// skip lets the watermark pass id: it will not be archived.
func (a *archiver) skip(id int64) {
	a.mu.Lock()
	a.doneLocked(id)
	a.mu.Unlock()
}

func (a *archiver) doneLocked(id int64) {
	i, ok := slices.BinarySearchFunc(a.pending, id, func(p pendingID, id int64) int { return cmp.Compare(p.id, id) })
	if !ok {
		return
	}
	a.pending[i].done = true
	n := 0
	for n < len(a.pending) && a.pending[n].done {
		n++
	}
	if n > 0 {
		a.pending = append(a.pending[:0], a.pending[n:]...)
	}
}

// watermark is the lowest id given out and not yet archived: HISTORY
// answers only below it. 0: nothing is pending.
func (a *archiver) watermark() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		return 0
	}
	return a.pending[0].id
}

// since is the oldest time HISTORY answers from.
func (a *archiver) since() time.Time { return a.now().Add(-a.keep) }

// run hands what queued up to the store, and prunes once at start and
// then every pruneEvery.
func (a *archiver) run() {
	defer close(a.done)
	a.prune()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-a.wake:
			a.flush()
		case <-prune.C:
			a.prune()
		case <-a.quit:
			a.flush()
			a.writing.Wait()
			return
		}
	}
}

func (a *archiver) flush() {
	a.mu.Lock()
	batch := a.queue
	a.queue = nil
	a.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	items := make([]store.Item, len(batch))
	for i, m := range batch {
		items[i] = *m.item
	}
	a.writing.Add(1)
	a.store.Archive(items, func(err error) {
		defer a.writing.Done()
		a.written(batch, err)
	})
}

// written runs on the store's writer after the commit: the answers held
// for it go, and the watermark moves up. A failure is logged and answers
// as a success would: the message itself is safe (or failed) on its own
// path; only the archive lacks it.
func (a *archiver) written(batch []archived, err error) {
	if err != nil {
		a.log.Error("archive messages", "count", len(batch), "err", err)
	}
	for _, m := range batch {
		switch {
		case m.e != nil:
			mb := m.e.mb
			mb.mu.Lock()
			w := m.e.wait
			w.archived = true
			if w.held {
				a.po.tellSender(m.e, w.how, w.mark)
			}
			mb.mu.Unlock()
		case m.fan != nil:
			m.fan.done("delivered") // the archive's share
		}
	}
	a.mu.Lock()
	for _, m := range batch {
		a.doneLocked(m.item.ID)
	}
	a.mu.Unlock()
}

// prune drops what is older than --history-days.
func (a *archiver) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := a.store.PruneArchive(ctx, a.since())
	switch {
	case err != nil:
		a.log.Warn("prune history", "err", err)
	case n > 0:
		a.log.Info("pruned history", "messages", n, "older_than", a.keep)
	}
}

func (a *archiver) close() {
	close(a.quit)
	<-a.done
}

// holdAnswer keeps the answer to e's sender until e is archived; it
// reports whether it did. A failure is not held: nothing was stored.
func (e *entry) holdAnswer(how, mark string) bool {
	w := e.wait
	if w == nil || w.archived || how == "failed" {
		return false
	}
	w.held, w.how, w.mark = true, how, mark
	return true
}

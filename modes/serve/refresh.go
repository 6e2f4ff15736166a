package serve

import (
	"cmp"
	"context"
	"slices"
	"time"

	"qchat/modes/serve/store"
)

// What a node of a cluster adds to the post office (clustered.go): the
// messages another node stored for a user online here are merged into its
// live mailbox, and a takeover waits until what a mailbox held only in
// memory is stored.

// refresh merges user's stored rows into its mailbox when it has a
// session here, on a goroutine of its own: one read at a time per
// mailbox, and one more for whatever was asked while it ran.
func (po *postOffice) refresh(user int64) {
	mb := po.existing(user)
	if mb == nil {
		return
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.sess == nil {
		return
	}
	if mb.refreshing {
		mb.again = true
		return
	}
	mb.refreshing = true
	go po.refreshLoop(mb)
}

func (po *postOffice) refreshLoop(mb *mailbox) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rows, err := po.store.Inbox(ctx, mb.user)
		cancel()
		if err != nil {
			po.log.Error("merge stored messages", "user", mb.user, "err", err)
		}
		mb.mu.Lock()
		if err == nil && mb.sess != nil {
			po.mergeLocked(mb, rows)
		}
		if !mb.again || mb.sess == nil {
			mb.refreshing, mb.again = false, false
			mb.mu.Unlock()
			return
		}
		mb.again = false
		mb.mu.Unlock()
	}
}

// mergeLocked adds the rows not in memory to mb's queue, in id order, and
// pushes them. When one sorts before what was pushed already, everything
// is pushed again from the start, in id order (the client drops what it
// has by id, as after a reconnect): the queue stays in id order, which
// cumulative ACKs and cursors need.
func (po *postOffice) mergeLocked(mb *mailbox, rows []store.Item) {
	lastPushed := int64(-1 << 63)
	if mb.next > 0 {
		lastPushed = mb.queue[mb.next-1].id
	}
	inMemory := len(mb.queue)
	again := false
	for i := range rows {
		if _, ok := slices.BinarySearchFunc(mb.queue[:inMemory], rows[i].ID, func(q slot, id int64) int { return cmp.Compare(q.id, id) }); ok {
			continue
		}
		if mb.deleting.has(rows[i].ID) {
			continue // acknowledged here; its deletion is on its way
		}
		e := &entry{item: &rows[i], mb: mb, state: stSaved}
		e.line = formatItem(nil, e.item)
		mb.queue = append(mb.queue, slot{e.item.ID, e})
		mb.live++
		again = again || rows[i].ID < lastPushed
	}
	if len(mb.queue) == inMemory {
		return
	}
	slices.SortFunc(mb.queue, func(a, b slot) int { return cmp.Compare(a.id, b.id) })
	if again {
		mb.resetPushedLocked()
	} else {
		mb.next = 0
		for mb.next < len(mb.queue) && mb.queue[mb.next].id <= lastPushed {
			mb.next++
		}
	}
	mb.pumpLocked(po)
}

// unsaved counts user's entries that are neither acknowledged nor
// committed to the store.
func (po *postOffice) unsaved(user int64) int {
	mb := po.existing(user)
	if mb == nil {
		return 0
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	n := 0
	for _, q := range mb.queue {
		if !q.e.gone && q.e.state != stSaved {
			n++
		}
	}
	return n
}

// mailedAway reports whether messages were stored here for user while it
// had no session here.
func (po *postOffice) mailedAway(user int64) bool {
	mb := po.existing(user)
	if mb == nil {
		return false
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.mailed && mb.sess == nil
}

// recentIDs remembers the last recentKept ids noted: the stored entries a
// recipient acknowledged, whose rows a merge may still read back before
// their deletion commits (they would come again, and make everything be
// pushed again). Empty until a node of a cluster notes one.
type recentIDs struct {
	set  map[int64]struct{}
	ring []int64
	next int
}

const recentKept = 4096

func (mb *mailbox) noteDeletingLocked(id int64) {
	r := &mb.deleting
	if r.set == nil {
		r.set = make(map[int64]struct{})
	}
	if len(r.ring) < recentKept {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % recentKept
	}
	r.set[id] = struct{}{}
}

func (r *recentIDs) has(id int64) bool {
	_, ok := r.set[id]
	return ok
}

// mergeItems merges items, committed to the store by another node, into
// user's mailbox when it has a session here (else they wait in the store
// for its next login).
func (po *postOffice) mergeItems(user int64, items []store.Item) {
	mb := po.existing(user)
	if mb == nil || len(items) == 0 {
		return
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.sess != nil {
		slices.SortFunc(items, func(a, b store.Item) int { return cmp.Compare(a.ID, b.ID) })
		po.mergeLocked(mb, items)
	}
}

// hintStored notes that another node stored messages for users: their
// next login here reads the store (attach).
func (po *postOffice) hintStored(users []int64) {
	if users == nil {
		po.readAlways.Store(true)
		return
	}
	for _, u := range users {
		mb := po.box(u)
		mb.mu.Lock()
		mb.hinted = true
		mb.mu.Unlock()
	}
}

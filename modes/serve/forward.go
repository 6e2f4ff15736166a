package serve

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"qchat/modes/serve/store"
	"qchat/protocol"
)

// Live delivery between the nodes of a cluster (clustered.go). A message
// whose recipient is online on another node takes its id here, on the
// sender's node, as any message does (so a sender's messages keep their
// order), and waits in the recipient's mailbox here, neither pushed nor
// stored. A copy goes over NATS to the recipient's node (FWD), which
// queues it in the live mailbox as one of its own: pushed, acknowledged
// within the ack grace or else stored under the same id, and it answers
// (SAFE) delivered, stored or failed. The sender hears its 250 from that
// answer.
//
// The promise holds when a node dies. The recipient's node gone before it
// answered: the sender's node stores its copy, under the same id; if the
// recipient had seen it, its client drops the second by id (PROTOCOL.md
// section 6, rule 4). The sender's node gone: the sender heard nothing and
// sends again (resend=<cid>) to another node, which knows the client id.
// PostgreSQL then sees a cross-node message only when it is not
// acknowledged in time, as on one server.

// The messages of one sender node for one recipient reach the
// recipient's node in the order of their ids, whichever way they go: a
// copy is not forwarded while an earlier message for the same recipient
// waits here to be stored (forwardLocked), and a stored one is sent on to
// the recipient's node on the same subject, in the same queue, as the
// copies (forwardStoredLocked), from under the mailbox's lock.

// fwdItem is a message for a user on another node: a copy to deliver and
// answer, or (Stored) one already committed, to merge.
type fwdItem struct {
	store.Item
	Stored bool `json:"stored,omitempty"`
}

// forwarder publishes the copies and answers between nodes from its own
// goroutine, in the order queued: no NATS write under a mailbox's lock.
type forwarder struct {
	mu    sync.Mutex
	fwd   map[string][]fwdItem  // node -> copies for it
	safe  map[string][]safeItem // node -> answers for it
	order []string              // nodes with something queued, first queued first
	wake  chan struct{}
	quit  chan struct{}
	done  chan struct{}

	send func(node, kind string, data []byte) // cluster.Forward

	pmu     sync.Mutex
	waiting []pendingFwd // forwarded, maybe not answered yet, oldest first
}

// safeItem is the answer for one copy: how it is safe, and the receipt
// mark that rides on a "delivered".
type safeItem struct {
	Recipient int64  `json:"to"`
	ID        int64  `json:"id"`
	How       string `json:"how"`
	Mark      string `json:"mark,omitempty"`
}

func newForwarder(send func(node, kind string, data []byte)) *forwarder {
	f := &forwarder{fwd: make(map[string][]fwdItem), safe: make(map[string][]safeItem),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), send: send}
	go f.run()
	return f
}

func (f *forwarder) noteLocked(node string) {
	if len(f.fwd[node]) == 0 && len(f.safe[node]) == 0 {
		f.order = append(f.order, node)
	}
}

// queue adds a copy for node; it never blocks.
func (f *forwarder) queue(node string, it fwdItem) {
	f.mu.Lock()
	f.noteLocked(node)
	f.fwd[node] = append(f.fwd[node], it)
	f.mu.Unlock()
	f.poke()
}

// answer adds an answer for node; it never blocks.
func (f *forwarder) answer(node string, a safeItem) {
	f.mu.Lock()
	f.noteLocked(node)
	f.safe[node] = append(f.safe[node], a)
	f.mu.Unlock()
	f.poke()
}

func (f *forwarder) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *forwarder) run() {
	defer close(f.done)
	for {
		stopping := false
		select {
		case <-f.wake:
		case <-f.quit:
			stopping = true // what is queued still goes
		}
		f.flush()
		if stopping {
			return
		}
	}
}

// flush publishes what is queued, node by node in the order queued.
func (f *forwarder) flush() {
	f.mu.Lock()
	fwd, safe, order := f.fwd, f.safe, f.order
	f.fwd, f.safe, f.order = make(map[string][]fwdItem), make(map[string][]safeItem), nil
	f.mu.Unlock()
	for _, node := range order {
		for items := fwd[node]; len(items) > 0; {
			n := min(len(items), fwdChunk) // well under cluster.MaxMail
			if b, err := json.Marshal(items[:n]); err == nil {
				f.send(node, "fwd", b)
			}
			items = items[n:]
		}
		for answers := safe[node]; len(answers) > 0; {
			n := min(len(answers), fwdChunk)
			if b, err := json.Marshal(answers[:n]); err == nil {
				f.send(node, "safe", b)
			}
			answers = answers[n:]
		}
	}
}

// fwdChunk is the most copies or answers in one NATS message: 16 KiB
// lines at most, well under cluster.MaxMail.
const fwdChunk = 16

func (f *forwarder) stop() {
	close(f.quit)
	<-f.done
}

// forwardLocked hands e, just queued in mb (no session here), to the node
// where its recipient is online, if any: it reports false when there is
// none (the caller stores it).
func (po *postOffice) forwardLocked(mb *mailbox, e *entry) bool {
	if po.fw == nil {
		return false
	}
	node := po.where(mb.user)
	if node == "" {
		return false
	}
	for _, q := range mb.queue {
		if o := q.e; o != e && !o.gone && o.node == "" && !o.origin {
			return false // an earlier one is being stored: this one follows it
		}
	}
	e.node = node
	it := *e.item
	it.Recipient = mb.user
	po.fw.queue(node, fwdItem{Item: it})
	po.fw.pending(e, time.Now())
	return true
}

// pendingFwd is a copy forwarded and not yet answered.
type pendingFwd struct {
	e  *entry
	at time.Time
}

// pending notes e, just forwarded: unanswered for too long, it is stored
// here (expire).
func (f *forwarder) pending(e *entry, at time.Time) {
	f.pmu.Lock()
	f.waiting = append(f.waiting, pendingFwd{e, at})
	f.pmu.Unlock()
}

// expireForwards stores, under their own ids, the copies forwarded before
// before that no answer came for (lost on the way, or a node too slow):
// the sender must not wait for ever. Answered ones are dropped from the
// list. Called by the sweeper.
func (po *postOffice) expireForwards(before time.Time) {
	f := po.fw
	if f == nil {
		return
	}
	f.pmu.Lock()
	list := f.waiting
	f.waiting = nil
	f.pmu.Unlock()
	var keep []pendingFwd
	var now []*entry
	for _, p := range list {
		mb := p.e.mb
		mb.mu.Lock()
		switch e := p.e; {
		case e.gone || e.node == "" || e.origin:
		case p.at.Before(before):
			e.node = ""
			if e.state == stLive && mb.sess == nil {
				now = append(now, e)
			}
		default:
			keep = append(keep, p)
		}
		mb.mu.Unlock()
	}
	f.pmu.Lock()
	f.waiting = append(keep, f.waiting...)
	f.pmu.Unlock()
	if len(now) > 0 {
		po.log.Warn("cluster: no answer for forwarded messages; storing them here", "messages", len(now))
		po.queueSaves(now)
	}
}

// forwardStoredLocked sends e, just stored for a recipient with no
// session here, on to the node where it is online, if any, to merge.
func (po *postOffice) forwardStoredLocked(mb *mailbox, e *entry) {
	if po.fw == nil {
		return
	}
	if node := po.where(mb.user); node != "" {
		it := *e.item
		it.Recipient = mb.user
		po.fw.queue(node, fwdItem{Item: it, Stored: true})
	}
}

var errForward = errors.New("forwarded message")

// decodeForward reads the copies another node forwards, refusing them all
// when one is not a message a node sends.
func decodeForward(data []byte) ([]fwdItem, error) {
	var items []fwdItem
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("%w: %v", errForward, err)
	}
	for _, it := range items {
		kindOK := it.Kind == "MSG" || it.Kind == "GMSG" || it.Stored && (it.Kind == "REQUEST" || it.Kind == "NOTICE")
		if it.Recipient <= 0 || it.ID <= 0 || it.Sender < 0 || it.GroupKey != "" || !kindOK ||
			len(it.Body) > protocol.MaxLine || len(it.Nick) > 64 || len(it.CID) > 32 {
			return nil, fmt.Errorf("%w: bad item %d", errForward, it.ID)
		}
	}
	return items, nil
}

// acceptForward queues the copies node forwarded in their recipients'
// mailboxes here, each answered to node once safe (tellSender). A
// recipient that left meanwhile gets its copy stored, as any offline one.
func (po *postOffice) acceptForward(node string, items []fwdItem) {
	for i := range items {
		it := &items[i].Item
		mb := po.box(it.Recipient)
		mb.mu.Lock()
		if _, ok := slices.BinarySearchFunc(mb.queue, it.ID, func(q slot, id int64) int { return cmp.Compare(q.id, id) }); ok {
			mb.mu.Unlock()
			continue // a copy came twice
		}
		if items[i].Stored {
			// Committed by node: merged when its recipient is here, else
			// it waits in the store for its next login.
			if mb.sess != nil && !mb.deleting.has(it.ID) {
				po.mergeLocked(mb, []store.Item{*it})
			}
			mb.mu.Unlock()
			continue
		}
		e := &entry{item: it, mb: mb, node: node, origin: true}
		e.line = formatItem(nil, it)
		po.insertLocked(mb, e)
		if mb.sess == nil {
			po.queueSave(e) // then told to wherever the user is (storedAway)
		} else {
			po.watchLocked(mb)
			mb.pumpLocked(po)
		}
		mb.mu.Unlock()
	}
}

// insertLocked adds e to mb's queue in id order. When it sorts before
// what was pushed already, everything not acknowledged is pushed again
// from the start (as mergeLocked does).
func (po *postOffice) insertLocked(mb *mailbox, e *entry) {
	id := e.item.ID
	mb.live++
	mb.shares.Add(e.item.Sender)
	n := len(mb.queue)
	if n == 0 || mb.queue[n-1].id < id {
		mb.queue = append(mb.queue, slot{id, e})
		return
	}
	i, _ := slices.BinarySearchFunc(mb.queue, id, func(q slot, id int64) int { return cmp.Compare(q.id, id) })
	mb.queue = slices.Insert(mb.queue, i, slot{id, e})
	if i < mb.next {
		mb.resetPushedLocked()
	}
}

// safeFrom takes node's answers for the copies this node forwarded: each
// sender hears its 250; a copy that could not be stored there is stored
// here.
func (po *postOffice) safeFrom(node string, answers []safeItem) {
	for _, a := range answers {
		mb := po.existing(a.Recipient)
		if mb == nil {
			continue
		}
		mb.mu.Lock()
		e := mb.findLocked(a.ID)
		switch {
		case e == nil || e.node != node || e.origin:
		case a.How == "failed":
			e.node = ""
			po.queueSave(e) // try here
		case a.How == "delivered" || a.How == "stored":
			e.node = ""
			po.tellSender(e, a.How, a.Mark)
			e.gone = true
			mb.live--
			mb.shares.Done(e.item.Sender)
			mb.compactLocked()
		}
		mb.mu.Unlock()
	}
}

// nodeGone stores, under their own ids, the copies forwarded to node that
// it never answered: it died (or left) with them.
func (po *postOffice) nodeGone(node string) {
	po.mu.Lock()
	boxes := make([]*mailbox, 0, len(po.boxes))
	for _, mb := range po.boxes {
		boxes = append(boxes, mb)
	}
	po.mu.Unlock()
	var now []*entry
	for _, mb := range boxes {
		mb.mu.Lock()
		for _, q := range mb.queue {
			if e := q.e; !e.gone && !e.origin && e.node == node {
				e.node = ""
				if e.state == stLive && mb.sess == nil {
					now = append(now, e)
				}
			}
		}
		mb.mu.Unlock()
	}
	if len(now) > 0 {
		po.log.Warn("cluster: storing what a dead node had not answered", "node", node, "messages", len(now))
		po.queueSaves(now)
	}
}

// decodeSafe reads a node's answers.
func decodeSafe(data []byte) ([]safeItem, error) {
	var answers []safeItem
	if err := json.Unmarshal(data, &answers); err != nil {
		return nil, fmt.Errorf("%w: answers: %v", errForward, err)
	}
	for _, a := range answers {
		if a.Recipient <= 0 || a.ID <= 0 || a.How != "delivered" && a.How != "stored" && a.How != "failed" ||
			a.Mark != "" && a.Mark != "shown" && a.Mark != "read" {
			return nil, fmt.Errorf("%w: bad answer for %d", errForward, a.ID)
		}
	}
	return answers, nil
}

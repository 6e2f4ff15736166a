package serve

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/store"
	"qchat/protocol"
)

// Resends (PROTOCOL.md section 6, "Sending again"). A client that lost its
// connection before the answer to a MSG sends it again as MSG
// resend=<cid>, with the client id it gave the first try (id=<cid>). The
// server must not take such a message twice:
//
//   - While it runs, the post office remembers the client ids of each
//     sender's latest messages (dedupe.Table): a resend of a message still
//     waiting for its answer takes the answer over from the lost
//     connection; a resend of an answered one gets the same answer again
//     (same msgid and time).
//   - Each id is also written to the journal (dedupe.Journal: a record
//     copied into a mapped ring file, no system call, no fsync, no
//     database) before anyone can see its message,
//     and read back into memory at start. After a SIGKILL, a resend of a
//     message from before is known with its msgid, but not what became of
//     it. The store says what it can: a stored message keeps its client id
//     in its inbox rows and, once they are acknowledged, in sent_ids
//     (store_sent.go), written in the transactions that were written
//     anyway. Waiting or acknowledged there: answered, not taken again.
//     Otherwise it lived only in memory and may or may not have reached
//     its recipients: it is posted again under its own msgid to those with
//     no waiting copy, and a recipient that had it drops it by msgid, as
//     every client must (section 6, rule 4).
//
// The journal write is the one thing a message with a client id costs
// that a message acknowledged within the ack grace did not cost before:
// without it, a server killed while the recipient had shown a message and
// the sender had not heard "delivered" makes the resend a second copy
// under a new msgid (BenchmarkRouteClientID measures it). It costs a
// copy of 128 bytes into a ring the server maps from its data folder (no
// system call, no fsync), and the disk at most the ring's 4 MiB per
// write-back period, however many messages pass. A power cut of the
// server's host can lose the last records: not covered.

// sentRemembered is how many client ids the post office keeps per sender
// in memory; a client keeps fewer messages than that waiting for answers.
const sentRemembered = 64

// sentForgetAfter is how long a quiet sender's client ids stay in memory.
const sentForgetAfter = time.Hour

// sentRec is what the post office remembers of a message sent with a
// client id. For a private message, e and how are guarded by mb.mu (e is
// set while the sender waits, how once answered); a group message's
// answer is its fanout's.
type sentRec struct {
	id    int64
	to    int64  // the recipient; 0 for a group message
	group string // "#name" for a group message
	time  time.Time
	mb    *mailbox // nil when answered at once (how set from the start)
	e     *entry
	how   string // delivered, stored or failed
	fan   *fanout
	old   bool // from the journal of an earlier run: what became of it is not known
}

// journalAppend records e in the journal, if there is one; the caller
// does so before anyone can see its message. A failure is logged (once):
// the message goes on, only a crash could then make its resend a second
// copy.
func (po *postOffice) journalAppend(e dedupe.Entry) {
	if po.journal == nil {
		return
	}
	if err := po.journal.Append(e); err != nil {
		po.log.Error("client ids", "err", err)
	}
	if po.onSent != nil {
		po.onSent(e) // the other nodes of a cluster (clustered.go)
	}
}

// loadJournal puts the ids of an earlier run's journal into memory.
func (po *postOffice) loadJournal(entries []dedupe.Entry) {
	for _, e := range entries {
		po.sent.Put(e.Sender, e.CID, &sentRec{id: e.ID, to: e.To, group: e.Group, time: e.Time, old: true}, e.Time)
	}
}

// resendPrivate handles MSG resend=<cid> to user to. It reports false when
// the message is new to the server: the caller posts it.
// blocked says whether to blocks the sender: then nothing is posted again,
// and the answer is "stored" as for any message to someone who blocks.
func (po *postOffice) resendPrivate(s *session, c *protocol.Command, to int64, blocked bool) (bool, error) {
	rec, known := po.sent.Get(s.user, c.ClientID)
	if known && (rec.group != "" || rec.to != to) {
		return true, protocol.Errorf(protocol.CodeSyntax, "client id %s was used for another message", c.ClientID)
	}
	if known && !rec.old {
		return po.takeOver(s, c.Tag, rec), nil
	}
	f, err := po.store.FindSent(context.Background(), s.user, c.ClientID)
	switch {
	case err != nil:
		return true, err
	case f.ID == 0 && !known:
		return false, nil // never taken: a new message
	case f.ID == 0:
		f.ID, f.Time = rec.id, rec.time
	}
	if f.Acked || len(f.Pending) > 0 || blocked {
		rec := &sentRec{id: f.ID, to: to, time: f.Time, how: "stored"}
		if f.Acked && len(f.Pending) == 0 && !blocked {
			rec.how = "delivered"
		}
		po.sent.Put(s.user, strings.Clone(c.ClientID), rec, time.Now())
		s.send(appendSent(nil, c.Tag, rec.id, rec.how, to, rec.time))
		return true, nil
	}
	po.repost(s, c.Tag, to, f.ID, f.Time, c.Args[1], c.ClientID)
	return true, nil
}

// repost queues private message id again (a resend of a message that
// lived only in the memory of a server since killed) for to, under its
// own id, and answers s once it is safe.
func (po *postOffice) repost(s *session, tag string, to, id int64, t time.Time, text, cid string) {
	mb := po.box(to)
	mb.mu.Lock()
	defer mb.mu.Unlock()
	e := &entry{mb: mb, from: s, tag: tag}
	e.item = &store.Item{Recipient: to, ID: id, Kind: "MSG", Sender: s.user, Nick: s.nickname(), Time: t, Body: text, CID: cid}
	e.line = formatItem(nil, e.item)
	e.rec = &sentRec{id: id, to: to, time: t, mb: mb, e: e}
	if po.arch != nil {
		po.arch.add(archived{item: e.item, e: e}) // it may have lived only in memory: archived again, once
	}
	po.sent.Put(s.user, strings.Clone(cid), e.rec, time.Now())
	mb.insertLocked(po, e)
	if mb.sess == nil && !po.forwardLocked(mb, e) { // online on another node: forward.go
		po.queueSave(e)
	}
	mb.pumpLocked(po)
}

// resendGroup handles MSG resend=<cid> to group, whose recipients are to.
// It reports false when the message is new to the server.
func (po *postOffice) resendGroup(s *session, c *protocol.Command, group string, to []int64) (bool, error) {
	rec, known := po.sent.Get(s.user, c.ClientID)
	if known && rec.group != group {
		return true, protocol.Errorf(protocol.CodeSyntax, "client id %s was used for another message", c.ClientID)
	}
	if known && !rec.old {
		return po.takeOver(s, c.Tag, rec), nil
	}
	f, err := po.store.FindSent(context.Background(), s.user, c.ClientID)
	switch {
	case err != nil:
		return true, err
	case f.ID == 0 && !known:
		return false, nil
	case f.ID == 0:
		f.ID, f.Time = rec.id, rec.time
	}
	missing := slices.DeleteFunc(to, func(u int64) bool { return slices.Contains(f.Pending, u) })
	boxes, fan := po.repostGroup(s, c.Tag, group, missing, f, c.Args[1], c.ClientID)
	po.sent.Put(s.user, strings.Clone(c.ClientID), &sentRec{id: f.ID, group: group, time: f.Time, fan: fan}, time.Now())
	po.pumpAll(boxes)
	return true, nil
}

// takeOver answers a resend of a message the post office remembers: the
// answer now, or, while the message is not yet safe, later to s instead
// of the lost connection. It reports false when the first try failed (not
// stored): the resend is then a new message.
func (po *postOffice) takeOver(s *session, tag string, rec *sentRec) bool {
	if f := rec.fan; f != nil {
		f.mu.Lock()
		how := f.how
		if how == "" {
			f.from, f.tag = s, tag
		}
		f.mu.Unlock()
		switch how {
		case "":
		case "failed":
			return false
		default:
			s.replyf(tag, protocol.CodeSent, "%d %s %s %s", f.id, how, f.group, protocol.FormatTime(f.time))
		}
		return true
	}
	var how string
	if mb := rec.mb; mb == nil {
		how = rec.how // answered at once: never changes
	} else {
		mb.mu.Lock()
		how = rec.how
		if how == "" && rec.e != nil {
			rec.e.from, rec.e.tag = s, tag
		}
		mb.mu.Unlock()
	}
	switch how {
	case "":
	case "failed":
		return false
	default:
		s.send(appendSent(nil, tag, rec.id, how, rec.to, rec.time))
	}
	return true
}

// repostGroup queues group message f.ID again (from s, as in a resend)
// for the members in to that hold no copy of it in memory, and answers s
// once those copies are safe; stored already when some member's copy
// waits on disk. It returns the mailboxes to pump.
func (po *postOffice) repostGroup(s *session, tag, group string, to []int64, f store.FoundSent, text, cid string) ([]*mailbox, *fanout) {
	slices.Sort(to)
	boxes := po.boxesOf(slices.Compact(to))
	item := &store.Item{ID: f.ID, Kind: "GMSG", Sender: s.user, Nick: s.nickname(), Time: f.Time, Body: group + " " + text, CID: cid,
		GroupKey: store.GroupKey(strings.TrimPrefix(group, "#"))}
	line := formatItem(nil, item)
	fan := &fanout{from: s, tag: tag, id: f.ID, group: group, time: f.Time}
	fan.left.Store(int64(len(boxes)) + 1)
	fan.stored.Store(len(f.Pending) > 0)
	if po.arch != nil {
		fan.left.Add(1) // the archive's share
		po.arch.add(archived{item: item, fan: fan})
	}
	var now []*entry
	had := 0
	for _, mb := range boxes {
		mb.mu.Lock()
		if mb.findLocked(f.ID) != nil {
			mb.mu.Unlock()
			had++
			continue
		}
		e := &entry{item: item, line: line, mb: mb, fan: fan}
		mb.insertLocked(po, e)
		if mb.sess == nil {
			now = append(now, e)
		}
		mb.mu.Unlock()
	}
	po.queueSaves(now)
	for range had {
		fan.done("stored") // loaded from the store: safe
	}
	fan.done("delivered") // the sender's own share
	return boxes, fan
}

// insertLocked adds e, whose id may be older than entries queued already
// (a group copy posted again after a restart), at its place in id order.
// When entries after it were pushed already, it is pushed at once:
// recipients take events in any order and drop by id what they have.
func (mb *mailbox) insertLocked(po *postOffice, e *entry) {
	i, found := slices.BinarySearchFunc(mb.queue, e.item.ID, func(q slot, id int64) int { return cmp.Compare(q.id, id) })
	if found {
		mb.queue[i] = slot{e.item.ID, e} // a gone entry of the same id: it no longer counts
	} else {
		mb.queue = slices.Insert(mb.queue, i, slot{e.item.ID, e})
	}
	mb.live++
	if e.item.GroupKey != "" {
		// The member's cursor may have passed this id (it acknowledged
		// later ones): bring it back below, or a stored copy would not
		// reach it.
		po.store.MoveCursor(mb.user, e.item.GroupKey, e.item.ID-1, true)
	}
	if mb.sess != nil {
		po.watchLocked(mb)
	}
	if i >= mb.next {
		return // pumped in its turn
	}
	if !found {
		mb.next++
	}
	if mb.sess != nil && !mb.syncing {
		e.pushed, e.at = true, time.Now().UnixNano()
		mb.inflight++
		mb.inBytes += len(e.line)
		mb.sess.send(e.line)
	}
}

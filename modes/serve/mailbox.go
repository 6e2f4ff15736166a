package serve

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// Delivery, the part of the server that keeps the promise "nothing lost,
// nothing twice":
//
//   - Every message gets an id and an entry in its recipient's mailbox.
//   - An online recipient is sent its entries in id order, at most a window
//     of them unacknowledged at a time; ACK removes an entry.
//   - An entry not acknowledged within the ack grace, or whose recipient is
//     offline or drops, is written to the store by the saver.
//   - The sender is answered once the entry is safe: acknowledged
//     ("delivered") or committed ("stored"), whichever comes first. So a
//     message that an online recipient acknowledges at once never touches
//     the disk, and one that is not acknowledged is on disk before its
//     sender hears that it was sent.
//   - On login the mailbox merges the store's rows with what it holds in
//     memory and sends everything again in id order; clients drop
//     duplicates by id.
//   - A message takes its id with its recipients' mailboxes locked (a
//     group message locks all its members' at once, in user id order, and
//     checks their room first): so every mailbox gets its entries in id
//     order, and a full queue refuses a group message before any member
//     has it (lockForID).
//
// Lock order: postOffice.mu, then mailbox.mu (several at once only in
// user id order), then postOffice.smu; an Outbox's lock is taken last. No
// lock is held across store I/O.

type entryState uint8

const (
	stLive   entryState = iota // in memory only
	stSaving                   // handed to the store, not yet committed
	stSaved                    // committed to the store
)

type entry struct {
	item   Stored
	line   []byte // the event line as sent; never changed (a group message's copies share it)
	mb     *mailbox
	state  entryState
	acked  bool     // acknowledged by the recipient
	gone   bool     // acknowledged, dropped, or left to the store: no longer counts, falls off the queue
	pushed bool     // sent to the mailbox's current session
	from   *session // told when the entry is safe; nil once told
	tag    string
	fan    *fanout   // a group message's copies share the answer; nil once told
	due    time.Time // when to save it if still unacknowledged
}

type mailbox struct {
	mu       sync.Mutex
	user     int64
	sess     *session
	syncing  bool   // sess is logging in: nothing is sent until the replay is merged
	queue    []slot // entries in memory, in id order; gone ones drop off the head
	live     int    // entries in queue that are not gone
	next     int    // queue[:next] were pushed to sess
	inflight int    // pushed, not acknowledged
	inBytes  int    // bytes of those
	stored   int    // rows in the store not in memory
}

// slot is an entry in a mailbox's queue, with its id at hand for the
// binary search that finds it (findLocked). The queue is in id order
// because every entry takes its id with its mailbox locked (lockForID),
// and attach sorts what it merges in.
type slot struct {
	id int64
	e  *entry
}

// findLocked returns the entry with id that is not gone, or nil.
func (mb *mailbox) findLocked(id int64) *entry {
	i, ok := slices.BinarySearchFunc(mb.queue, id, func(s slot, id int64) int { return cmp.Compare(s.id, id) })
	if !ok || mb.queue[i].e.gone {
		return nil
	}
	return mb.queue[i].e
}

// postOffice owns all mailboxes and the saver goroutine.
type postOffice struct {
	store       *Store
	ids         *idAlloc
	log         *slog.Logger
	grace       time.Duration
	maxQueue    int // per recipient, stored and in memory together
	window      int // unacknowledged entries pushed to one session
	windowBytes int

	mu    sync.Mutex
	boxes map[int64]*mailbox

	smu    sync.Mutex
	urgent []*entry
	graceQ []*entry // in due order
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	saving sync.WaitGroup // batches handed to the store, not yet called back
}

func newPostOffice(ctx context.Context, st *Store, ids *idAlloc, log *slog.Logger, grace time.Duration, maxQueue, window, windowBytes int) (*postOffice, error) {
	po := &postOffice{
		store: st, ids: ids, log: log, grace: grace, maxQueue: maxQueue,
		window: window, windowBytes: windowBytes,
		boxes: make(map[int64]*mailbox),
		wake:  make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	counts, err := st.InboxCounts(ctx)
	if err != nil {
		return nil, err
	}
	for user, n := range counts {
		po.box(user).stored = n
	}
	go po.saver()
	return po, nil
}

// box returns the mailbox of user, creating it.
func (po *postOffice) box(user int64) *mailbox {
	po.mu.Lock()
	defer po.mu.Unlock()
	return po.boxLocked(user)
}

// boxesOf returns the mailboxes of users, creating them.
func (po *postOffice) boxesOf(users []int64) []*mailbox {
	boxes := make([]*mailbox, len(users))
	po.mu.Lock()
	defer po.mu.Unlock()
	for i, u := range users {
		boxes[i] = po.boxLocked(u)
	}
	return boxes
}

func (po *postOffice) boxLocked(user int64) *mailbox {
	mb := po.boxes[user]
	if mb == nil {
		mb = &mailbox{user: user}
		po.boxes[user] = mb
	}
	return mb
}

// post accepts a message from s (request tag) for user to. The sender is
// answered later, once the message is safe; an error means it was refused.
func (po *postOffice) post(s *session, tag string, to int64, text string) error {
	mb := po.box(to)
	id, err := po.lockForID([]*mailbox{mb}, true)
	if err != nil {
		return err
	}
	defer mb.mu.Unlock()
	e := &entry{mb: mb, from: s, tag: tag}
	e.item = Stored{Recipient: to, ID: id, Kind: "MSG", Sender: s.user, Nick: s.nickname(), Time: time.Now(), Body: text}
	e.line = formatItem(nil, &e.item)
	po.enqueueLocked(mb, e)
	po.queueSave(e, mb.sess == nil)
	mb.pumpLocked(po)
	return nil
}

// lockForID locks boxes, which are in user id order, and takes a message
// id while they are locked: so each mailbox gets its entries in id order.
// With room, it refuses (leaving them unlocked) when one of them is full.
// When the reserved ids run out it waits for more with nothing locked,
// since the store's writer may need one of the mailboxes (saved) before it
// gets to the reservation.
func (po *postOffice) lockForID(boxes []*mailbox, room bool) (int64, error) {
	for {
		for i, mb := range boxes {
			mb.mu.Lock()
			if !room {
				continue
			}
			if err := po.roomLocked(mb); err != nil {
				unlockAll(boxes[:i+1])
				return 0, err
			}
		}
		if id, ok := po.ids.TryNext(); ok {
			return id, nil
		}
		unlockAll(boxes)
		po.ids.Wait()
	}
}

func unlockAll(boxes []*mailbox) {
	for _, mb := range boxes {
		mb.mu.Unlock()
	}
}

func (po *postOffice) roomLocked(mb *mailbox) error {
	if mb.live+mb.stored >= po.maxQueue {
		return protocol.Errorf(protocol.CodeQueueFull, "%d's queue is full (%d messages waiting); try later", mb.user, po.maxQueue)
	}
	return nil
}

// enqueueLocked adds e (with its line) to its mailbox. The caller hands it
// to the saver, urgent when the recipient is offline (mb.sess == nil),
// else due when its grace is over; and pumps the mailbox, which pushes it
// to an online recipient.
func (po *postOffice) enqueueLocked(mb *mailbox, e *entry) {
	mb.queue = append(mb.queue, slot{e.item.ID, e})
	mb.live++
	if mb.sess != nil {
		e.due = e.item.Time.Add(po.grace)
	}
}

// notify queues a durable event of kind (REQUEST or NOTICE) for user to,
// from user from; body is the rest of the event's arguments. Nobody waits
// for it, and it is not refused for a full queue: it answers something
// the recipient did, or asks for an answer, and is small.
func (po *postOffice) notify(to int64, kind string, from int64, nick, body string) {
	if to == 0 {
		return
	}
	mb := po.box(to)
	id, _ := po.lockForID([]*mailbox{mb}, false)
	defer mb.mu.Unlock()
	e := &entry{mb: mb}
	e.item = Stored{Recipient: to, ID: id, Kind: kind, Sender: from, Nick: nick, Time: time.Now(), Body: body}
	e.line = formatItem(nil, &e.item)
	po.enqueueLocked(mb, e)
	po.queueSave(e, mb.sess == nil)
	mb.pumpLocked(po)
}

// fanout answers the sender of a group message once every member's copy
// is safe: "delivered" when all acknowledged, "stored" otherwise. Members
// acknowledge at the same time on many goroutines: the counts are atomic,
// and the one that takes left to 0 sees what all the others did.
type fanout struct {
	from   *session
	tag    string
	id     int64
	group  string
	time   time.Time
	left   atomic.Int64
	stored atomic.Bool
	failed atomic.Int64
}

func (f *fanout) done(how string) {
	switch how {
	case "stored":
		f.stored.Store(true)
	case "failed":
		f.failed.Add(1)
	}
	if f.left.Add(-1) > 0 {
		return
	}
	switch failed := f.failed.Load(); {
	case failed > 0:
		f.from.replyf(f.tag, protocol.CodeLocalError, "message %d could not be stored for %d members of %s", f.id, failed, f.group)
	case f.stored.Load():
		f.from.replyf(f.tag, protocol.CodeSent, "%d stored %s %s", f.id, f.group, protocol.FormatTime(f.time))
	default:
		f.from.replyf(f.tag, protocol.CodeSent, "%d delivered %s %s", f.id, f.group, protocol.FormatTime(f.time))
	}
}

// postGroup accepts a group message from s for the members in to (one id
// for all copies; to is sorted in place) and answers once every copy is
// safe. A member whose queue is full makes it fail for all, before
// anything is queued.
//
// The copies are queued, not yet sent: the caller pumps the mailboxes it
// returns (pumpAll), at once or after more posts to the same members, so
// that a burst of posts reaches each member in one write.
func (po *postOffice) postGroup(s *session, tag, group string, to []int64, text string) ([]*mailbox, error) {
	slices.Sort(to)
	boxes := po.boxesOf(slices.Compact(to))
	id, err := po.lockForID(boxes, true)
	if err != nil {
		return nil, err
	}
	// All copies share one item's strings and one event line.
	item := Stored{ID: id, Kind: "GMSG", Sender: s.user, Nick: s.nickname(), Time: time.Now(), Body: group + " " + text}
	line := formatItem(nil, &item)
	f := &fanout{from: s, tag: tag, id: item.ID, group: group, time: item.Time}
	f.left.Store(int64(len(boxes)) + 1)
	var now []*entry                       // to save at once: copies for offline members
	later := make([]*entry, 0, len(boxes)) // when their grace is over: for online ones
	for _, mb := range boxes {
		e := &entry{item: item, line: line, mb: mb, fan: f}
		e.item.Recipient = mb.user
		po.enqueueLocked(mb, e)
		if mb.sess == nil {
			now = append(now, e)
		} else {
			later = append(later, e)
		}
		mb.mu.Unlock()
	}
	po.queueSaves(now, later)
	f.done("delivered") // the sender's own share: answers at once when there is nobody else
	return boxes, nil
}

// pumpAll sends each mailbox's queued entries to its session, as far as
// its window allows.
func (po *postOffice) pumpAll(boxes []*mailbox) {
	for _, mb := range boxes {
		mb.mu.Lock()
		mb.pumpLocked(po)
		mb.mu.Unlock()
	}
}

// pretendStored answers a message that was dropped because its recipient
// blocks the sender exactly as a stored one would be answered.
func (po *postOffice) pretendStored(s *session, tag string, to int64) {
	s.replyf(tag, protocol.CodeSent, "%d stored %d %s", po.ids.Next(), to, protocol.FormatTime(time.Now()))
}

// formatItem appends the event line of a stored item: KIND msgid from
// nick time body, where body holds the kind's remaining arguments.
func formatItem(dst []byte, it *Stored) []byte {
	kind := it.Kind
	if kind == "" || kind == "msg" {
		kind = "MSG"
	}
	// The same line as protocol.AppendEvent(dst, kind, idStr(it.ID),
	// idStr(it.Sender), it.Nick, protocol.FormatTime(it.Time), it.Body),
	// built without its allocations: this runs for every message.
	if dst == nil {
		dst = make([]byte, 0, len(kind)+len(it.Nick)+len(it.Body)+64)
	}
	dst = append(dst, kind...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, it.ID, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, it.Sender, 10)
	dst = append(dst, ' ')
	dst = appendOneLine(dst, it.Nick)
	dst = append(dst, ' ')
	dst = appendWireTime(dst, it.Time)
	dst = append(dst, ' ')
	dst = appendOneLine(dst, it.Body)
	return append(dst, '\n')
}

// pumpBufs holds the buffers in which pumpLocked joins lines.
var pumpBufs = sync.Pool{New: func() any { return new([]byte) }}

// pumpLocked sends queued entries to the session while the window allows,
// all in one write.
func (mb *mailbox) pumpLocked(po *postOffice) {
	if mb.sess == nil || mb.syncing || mb.next == len(mb.queue) {
		return
	}
	buf := pumpBufs.Get().(*[]byte)
	lines := (*buf)[:0]
	for mb.next < len(mb.queue) && mb.inflight < po.window && mb.inBytes < po.windowBytes {
		e := mb.queue[mb.next].e
		mb.next++
		if e.gone {
			continue
		}
		e.pushed = true
		mb.inflight++
		mb.inBytes += len(e.line)
		lines = append(lines, e.line...)
	}
	if len(lines) > 0 {
		mb.sess.send(lines) // false: the session is closing; its detach takes the entries back
	}
	if cap(lines) <= 64<<10 {
		*buf = lines[:0]
		pumpBufs.Put(buf)
	}
}

// ack handles ACK from user for ids.
func (po *postOffice) ack(user int64, ids []int64) {
	po.mu.Lock()
	mb := po.boxes[user]
	po.mu.Unlock()
	if mb == nil {
		return
	}
	var del []int64
	mb.mu.Lock()
	for _, id := range ids {
		e := mb.findLocked(id)
		if e == nil {
			continue // already acknowledged: duplicates are harmless
		}
		e.acked, e.gone = true, true
		mb.live--
		if e.pushed {
			mb.inflight--
			mb.inBytes -= len(e.line)
		}
		po.tellSender(e, "delivered")
		if e.state == stSaved {
			del = append(del, id)
		}
	}
	mb.compactLocked()
	mb.pumpLocked(po)
	mb.mu.Unlock()
	if len(del) > 0 {
		po.store.DeleteInbox(user, del)
	}
}

// compactLocked drops acknowledged entries from the head of the queue.
func (mb *mailbox) compactLocked() {
	n := 0
	for n < len(mb.queue) && mb.queue[n].e.gone {
		mb.queue[n] = slot{}
		n++
	}
	mb.queue = mb.queue[n:]
	mb.next = max(0, mb.next-n)
	if len(mb.queue) > 2*mb.live+64 {
		// Acknowledged out of order behind an old entry: filter them out.
		keep, next := make([]slot, 0, mb.live), 0
		for i, q := range mb.queue {
			if !q.e.gone {
				keep = append(keep, q)
				if i < mb.next {
					next++
				}
			}
		}
		mb.queue, mb.next = keep, next
	} else if cap(mb.queue) > 256 && len(mb.queue) < cap(mb.queue)/4 {
		mb.queue = append([]slot(nil), mb.queue...)
	}
}

// tellSender answers the sender of e, once: how is "delivered", "stored"
// or "failed" (not stored: the sender must not believe it was sent).
func (po *postOffice) tellSender(e *entry, how string) {
	if e.fan != nil {
		e.fan.done(how)
		e.fan = nil
		return
	}
	if e.from == nil {
		return
	}
	if how == "failed" {
		e.from.replyf(e.tag, protocol.CodeLocalError, "message %d could not be stored; not sent", e.item.ID)
	} else {
		e.from.send(appendSent(make([]byte, 0, 96), e.tag, e.item.ID, how, e.item.Recipient, e.item.Time))
	}
	e.from = nil
}

// attach makes s the session of its user's mailbox and sends it everything
// waiting, stored or not, in id order. It returns the session it replaced.
func (po *postOffice) attach(ctx context.Context, s *session) (old *session) {
	mb := po.box(s.user)
	mb.mu.Lock()
	old = mb.sess
	if old != nil {
		mb.resetPushedLocked()
	}
	mb.sess, mb.syncing = s, true
	load := mb.stored > 0
	mb.mu.Unlock()

	var rows []Stored
	var err error
	if load {
		rows, err = po.store.Inbox(ctx, s.user)
		if err != nil {
			po.log.Error("replay inbox", "user", s.user, "err", err)
		}
	}

	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.sess != s {
		return old
	}
	if load && err == nil {
		// Nothing was pushed to s yet (next is 0): drop what is gone, so
		// that a row of a gone entry comes back as the only one of its id.
		mb.queue = slices.DeleteFunc(mb.queue, func(q slot) bool { return q.e.gone })
		inMemory := len(mb.queue)
		for i := range rows {
			if _, ok := slices.BinarySearchFunc(mb.queue[:inMemory], rows[i].ID, func(q slot, id int64) int { return cmp.Compare(q.id, id) }); ok {
				continue
			}
			e := &entry{item: rows[i], mb: mb, state: stSaved}
			e.line = formatItem(nil, &e.item)
			mb.queue = append(mb.queue, slot{e.item.ID, e})
			mb.live++
		}
		mb.stored = 0
		slices.SortFunc(mb.queue, func(a, b slot) int { return cmp.Compare(a.id, b.id) })
	}
	mb.syncing = false
	mb.pumpLocked(po)
	return old
}

func (mb *mailbox) resetPushedLocked() {
	for _, q := range mb.queue {
		q.e.pushed = false
	}
	mb.next, mb.inflight, mb.inBytes = 0, 0, 0
}

// detach is called when s ends. What it was sent and did not acknowledge
// goes to the store; what is stored already leaves memory.
func (po *postOffice) detach(s *session) {
	po.mu.Lock()
	mb := po.boxes[s.user]
	po.mu.Unlock()
	if mb == nil {
		return
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.sess != s {
		return // replaced by a newer session
	}
	mb.sess, mb.syncing = nil, false
	mb.resetPushedLocked()
	keep := mb.queue[:0]
	for _, q := range mb.queue {
		switch e := q.e; {
		case e.gone:
		case e.state == stSaved:
			e.gone = true
			mb.live--
			mb.stored++
		default:
			if e.state == stLive {
				po.queueSave(e, true)
			}
			keep = append(keep, q)
		}
	}
	clear(mb.queue[len(keep):])
	mb.queue = keep
}

// queueSave hands e to the saver: now (urgent) or when its grace is over.
func (po *postOffice) queueSave(e *entry, urgent bool) {
	po.smu.Lock()
	if urgent {
		po.urgent = append(po.urgent, e)
	} else {
		po.graceQ = append(po.graceQ, e)
	}
	wakeNow := urgent || len(po.graceQ) == 1
	po.smu.Unlock()
	if wakeNow {
		po.wakeSaver()
	}
}

// queueSaves is queueSave for many: now urgent, later when due.
func (po *postOffice) queueSaves(now, later []*entry) {
	if len(now) == 0 && len(later) == 0 {
		return
	}
	po.smu.Lock()
	po.urgent = append(po.urgent, now...)
	wakeNow := len(now) > 0 || (len(later) > 0 && len(po.graceQ) == 0)
	po.graceQ = append(po.graceQ, later...)
	po.smu.Unlock()
	if wakeNow {
		po.wakeSaver()
	}
}

func (po *postOffice) wakeSaver() {
	select {
	case po.wake <- struct{}{}:
	default:
	}
}

// saver writes entries to the store when they are due.
func (po *postOffice) saver() {
	defer close(po.done)
	timer := time.NewTimer(time.Hour)
	for {
		batch, next := po.takeDue(time.Now())
		if len(batch) > 0 {
			po.save(batch)
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-po.wake:
		case <-timer.C:
		case <-po.quit:
			if batch, _ := po.takeDue(time.Now().Add(time.Hour)); len(batch) > 0 {
				po.save(batch)
			}
			po.saving.Wait()
			return
		}
		timer.Stop()
	}
}

// takeDue removes and returns the urgent entries and those whose grace is
// over at now; next is when the next one falls due.
func (po *postOffice) takeDue(now time.Time) (batch []*entry, next time.Time) {
	po.smu.Lock()
	defer po.smu.Unlock()
	batch, po.urgent = po.urgent, nil
	n := 0
	for n < len(po.graceQ) && !po.graceQ[n].due.After(now) {
		n++
	}
	batch = append(batch, po.graceQ[:n]...)
	clear(po.graceQ[:n])
	po.graceQ = po.graceQ[n:]
	if len(po.graceQ) == 0 {
		po.graceQ = nil
	} else {
		next = po.graceQ[0].due
	}
	return batch, next
}

// save claims the batch's live, unacknowledged entries and writes them.
func (po *postOffice) save(batch []*entry) {
	var claimed []*entry
	var items []Stored
	for _, e := range batch {
		e.mb.mu.Lock()
		if !e.gone && e.state == stLive {
			e.state = stSaving
			claimed = append(claimed, e)
			items = append(items, e.item)
		}
		e.mb.mu.Unlock()
	}
	if len(claimed) == 0 {
		return
	}
	po.saving.Add(1)
	po.store.SaveInbox(items, func(err error) {
		defer po.saving.Done()
		po.saved(claimed, err)
	})
}

// saved runs on the store's writer after a commit.
func (po *postOffice) saved(claimed []*entry, err error) {
	if err != nil {
		po.log.Error("store messages", "count", len(claimed), "err", err)
	}
	dels := make(map[int64][]int64)
	for _, e := range claimed {
		mb := e.mb
		mb.mu.Lock()
		switch {
		case err != nil:
			// Not safe: the sender must not believe it was sent.
			e.state = stLive
			po.tellSender(e, "failed")
			if mb.sess == nil && !e.gone {
				e.gone = true
				mb.live--
				mb.compactLocked()
			}
		case e.acked:
			e.state = stSaved
			dels[mb.user] = append(dels[mb.user], e.item.ID)
		default:
			e.state = stSaved
			po.tellSender(e, "stored")
			if mb.sess == nil {
				e.gone = true
				mb.live--
				mb.stored++
				mb.compactLocked()
			}
		}
		mb.mu.Unlock()
	}
	for user, ids := range dels {
		po.store.DeleteInbox(user, ids)
	}
}

// close saves what is still only in memory and stops the saver.
func (po *postOffice) close() {
	close(po.quit)
	<-po.done
}

// appendSent appends the reply "[@tag ]250 <msgid> <how> <to> <time>" that
// tells a sender its message is safe; tag is a valid tag (checked by the
// parser), how is "delivered" or "stored".
func appendSent(dst []byte, tag string, id int64, how string, to int64, t time.Time) []byte {
	if tag != "" {
		dst = append(dst, '@')
		dst = append(dst, tag...)
		dst = append(dst, ' ')
	}
	dst = strconv.AppendInt(dst, protocol.CodeSent, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, id, 10)
	dst = append(dst, ' ')
	dst = append(dst, how...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, to, 10)
	dst = append(dst, ' ')
	dst = appendWireTime(dst, t)
	return append(dst, '\n')
}

// appendOneLine appends s with NUL, CR and LF replaced by spaces, as
// protocol.AppendEvent does; the text was checked on the way in, so the
// fast path is a plain copy.
func appendOneLine(dst []byte, s string) []byte {
	if strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, 0) < 0 {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// wireSecond caches the text of one second in protocol.TimeLayout up to
// the fraction ("2006-01-02T15:04:05."), so that stamping a message costs
// a few appends rather than a time.Format.
type wireSecond struct {
	unix   int64
	prefix string
}

var lastWireSecond atomic.Pointer[wireSecond]

// appendWireTime appends t as protocol.FormatTime writes it: UTC,
// milliseconds (truncated), "Z".
func appendWireTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	c := lastWireSecond.Load()
	if c == nil || c.unix != sec {
		c = &wireSecond{unix: sec, prefix: t.Format("2006-01-02T15:04:05.")}
		lastWireSecond.Store(c)
	}
	dst = append(dst, c.prefix...)
	ms := t.Nanosecond() / 1e6
	return append(dst, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

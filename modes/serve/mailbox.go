package serve

import (
	"bytes"
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/limits"
	"qchat/modes/serve/receipts"
	"qchat/modes/serve/store"
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
	item   *store.Item // a group message's copies share one (Recipient 0: the copy's is mb.user)
	line   []byte      // the event line as sent; never changed (a group message's copies share it)
	mb     *mailbox
	state  entryState
	acked  bool     // acknowledged by the recipient
	gone   bool     // acknowledged, dropped, or left to the store: no longer counts, falls off the queue
	pushed bool     // sent to the mailbox's current session
	from   *session // told when the entry is safe; nil once told
	tag    string
	fan    *fanout  // a group message's copies share the answer; nil once told
	at     int64    // when it was pushed (unix ns); its ack grace runs from there
	rec    *sentRec // what a resend finds, for a message sent with a client id
	read   uint8    // a READ named it before its ACK: readRides or readNoted (receipts.go)
	wait   *onHold  // its answer waits for the history archive too (archive.go); nil without one
	hide   bool     // its recipient's presence is hidden from its sender: answered "stored", stored at once
	node   string   // a cluster's (forward.go): forwarded to this node, or, origin, forwarded from it; "" once answered
	origin bool     // the sender is on node: the answer goes there
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

	shares limits.Shares // items waiting (in memory or stored) by sender: see roomLocked

	// How long this recipient takes to acknowledge, as TCP estimates a
	// round trip (RFC 6298): the smoothed time and its variation, in ns.
	// Its ack grace is srtt + 4*rttvar, within the server's bounds (grace).
	srtt, rttvar int64
	lastAck      int64     // when it last acknowledged something (unix ns)
	watching     bool      // in postOffice.watched
	refreshing   bool      // a merge of stored rows runs (refresh.go)
	mailed       bool      // a node of a cluster stored messages for it while it had no session here
	hinted       bool      // another node stored messages for it (storedHint)
	deleting     recentIDs // stored entries acknowledged lately, whose rows may not be deleted yet (refresh.go)
	again        bool      // one more was asked meanwhile
	watchIdx     int       // its index there; guarded by postOffice.smu
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
	store       store.Store
	ids         *idAlloc
	log         *slog.Logger
	grace       time.Duration
	maxQueue    int // per recipient, stored and in memory together
	window      int // unacknowledged entries pushed to one session
	windowBytes int
	share       int // items one sender may have waiting for one recipient (0: no cap)
	// hidden reports whether viewer may not know whether user is online
	// (friends mode, blocks: Server.seesPresence); nil: everyone may. A
	// message to a user hidden from its sender is answered as a stored one.
	hidden func(viewer, user int64) bool

	mu    sync.Mutex
	boxes map[int64]*mailbox

	gmu     sync.Mutex
	groupHi map[string]int64 // groups with stored messages: the highest id stored

	onMarks func([]receipts.Mark) // takes the receipt marks that ACKs make (receipts.go)

	// A node of a cluster (clustered.go): other nodes store messages for
	// the users here too, so a login always reads the inbox; a group's
	// copies are stored per member; storedAway hears of the users whose
	// messages were stored while they have no session here (online on
	// another node, maybe).
	cluster    bool
	fw         *forwarder              // live delivery to other nodes (forward.go); nil: none
	where      func(user int64) string // the node where user is online, "" for none or this one
	onSent     func(dedupe.Entry)      // hears each client id recorded in the journal
	readAlways atomic.Bool             // every login reads the store (notices may have been missed)
	storedHint func(users []int64)     // hears of users whose messages were stored (the other nodes' logins then read the store)
	arch       *archiver               // the history archive (archive.go); nil: history is not kept

	sent    *dedupe.Table[*sentRec] // client ids of the latest messages of each sender (resend.go)
	journal *dedupe.Journal         // where those ids are written before anyone sees their message (nil: nowhere)

	smu     sync.Mutex
	urgent  []*entry
	watched []*mailbox // online mailboxes with entries in memory only: the saver checks their graces
	scan    []*mailbox // the saver's copy of watched
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	saving  sync.WaitGroup // batches handed to the store, not yet called back
}

func newPostOffice(ctx context.Context, st store.Store, ids *idAlloc, log *slog.Logger, grace time.Duration, maxQueue, window, windowBytes int) (*postOffice, error) {
	po := &postOffice{
		store: st, ids: ids, log: log, grace: grace, maxQueue: maxQueue,
		window: window, windowBytes: windowBytes,
		boxes: make(map[int64]*mailbox),
		sent:  dedupe.New[*sentRec](sentRemembered),
		wake:  make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	counts, err := st.InboxSenders(ctx)
	if err != nil {
		return nil, err
	}
	if po.groupHi, err = st.GroupsStored(ctx); err != nil {
		return nil, err
	}
	for k, n := range counts {
		mb := po.box(k[0])
		mb.stored += n
		mb.shares.AddN(k[1], n)
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
	return po.postID(s, tag, to, text, "")
}

// postID is post of a message with the sender's client id cid ("" for
// none), remembered for a resend.
func (po *postOffice) postID(s *session, tag string, to int64, text, cid string) error {
	mb := po.box(to)
	id, err := po.lockForID([]*mailbox{mb}, s)
	if err != nil {
		return err
	}
	defer mb.mu.Unlock()
	e := s.newEntry()
	e.mb, e.from, e.tag = mb, s, tag
	e.item = s.newItem()
	*e.item = store.Item{Recipient: to, ID: id, Kind: "MSG", Sender: s.user, Nick: s.nickname(), Time: time.Now(), Body: text, CID: cid}
	e.line = formatItem(s.lineFor(e.item), e.item)
	if po.arch != nil {
		po.arch.add(archived{item: e.item, e: e})
	}
	if cid != "" {
		e.rec = s.newRec()
		*e.rec = sentRec{id: id, to: to, time: e.item.Time, mb: mb, e: e}
		po.sent.Put(s.user, strings.Clone(cid), e.rec, e.item.Time)                                 // kept for an hour: not a part of the arena
		po.journalAppend(dedupe.Entry{Sender: s.user, CID: cid, ID: id, To: to, Time: e.item.Time}) // before the push below
	}
	e.hide = po.hidden != nil && po.hidden(s.user, to)
	po.enqueueLocked(mb, e)
	// Hidden: as for one offline, so that neither the answer nor its time
	// tells. On another node (a cluster's): forwarded there.
	if e.hide || mb.sess == nil && !po.forwardLocked(mb, e) {
		po.queueSave(e)
	}
	mb.pumpLocked(po)
	return nil
}

// lockForID locks boxes, which are in user id order, and takes a message
// id while they are locked: so each mailbox gets its entries in id order.
// With a sender (from), it refuses (leaving them unlocked) when one of them
// has no room for from's message.
// When the reserved ids run out it waits for more with nothing locked,
// since the store's writer may need one of the mailboxes (saved) before it
// gets to the reservation.
func (po *postOffice) lockForID(boxes []*mailbox, from *session) (int64, error) {
	for {
		for i, mb := range boxes {
			mb.mu.Lock()
			if from == nil {
				continue
			}
			if err := po.roomLocked(mb, from); err != nil {
				unlockAll(boxes[:i+1])
				return 0, err
			}
		}
		if id, ok := po.tryID(); ok {
			return id, nil
		}
		unlockAll(boxes)
		po.ids.Wait()
	}
}

// tryID is ids.TryNext, through the archive's watermark when there is one.
func (po *postOffice) tryID() (int64, bool) {
	if po.arch != nil {
		return po.arch.takeID(po.ids)
	}
	return po.ids.TryNext()
}

func unlockAll(boxes []*mailbox) {
	for _, mb := range boxes {
		mb.mu.Unlock()
	}
}

// roomLocked refuses a message from a sender to mb when from has its
// share of mb's queue waiting already (so one sender cannot fill a queue
// that everyone else needs too), or when the queue is full.
func (po *postOffice) roomLocked(mb *mailbox, from *session) error {
	if po.share > 0 && !from.lim.exempt && mb.shares.Count(from.user) >= po.share {
		return protocol.Errorf(protocol.CodeQueueFull, "%d messages from you already wait for %d (your share of their queue); try later", po.share, mb.user)
	}
	if mb.live+mb.stored >= po.maxQueue {
		return protocol.Errorf(protocol.CodeQueueFull, "%d's queue is full (%d messages waiting); try later", mb.user, po.maxQueue)
	}
	return nil
}

// enqueueLocked adds e (with its line) to its mailbox. The caller hands it
// to the saver when the recipient is offline (mb.sess == nil; an online
// one's mailbox is watched: the saver takes its entries when their grace
// is over); and pumps the mailbox, which pushes it to an online recipient.
func (po *postOffice) enqueueLocked(mb *mailbox, e *entry) {
	mb.queue = append(mb.queue, slot{e.item.ID, e})
	mb.live++
	mb.shares.Add(e.item.Sender)
	if mb.sess != nil {
		po.watchLocked(mb)
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
	id, _ := po.lockForID([]*mailbox{mb}, nil)
	defer mb.mu.Unlock()
	if po.arch != nil {
		po.arch.skip(id) // not a message: the watermark passes it
	}
	e := &entry{mb: mb}
	e.item = &store.Item{Recipient: to, ID: id, Kind: kind, Sender: from, Nick: nick, Time: time.Now(), Body: body}
	e.line = formatItem(nil, e.item)
	po.enqueueLocked(mb, e)
	if mb.sess == nil {
		po.queueSave(e)
	}
	mb.pumpLocked(po)
}

// fanout answers the sender of a group message once every member's copy
// is safe: "delivered" when all acknowledged, "stored" otherwise. Members
// acknowledge at the same time on many goroutines: the counts are atomic,
// and the one that takes left to 0 sees what all the others did.
type fanout struct {
	mu     sync.Mutex // guards from, tag and how: a resend may take the answer over
	from   *session
	tag    string
	how    string // the answer once given
	id     int64
	group  string
	time   time.Time
	left   atomic.Int64
	stored atomic.Bool
	failed atomic.Int64
	hide   bool // a member's presence is hidden from the sender: never "delivered"
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
	failed := f.failed.Load()
	how = "delivered"
	switch {
	case failed > 0:
		how = "failed"
	case f.stored.Load() || f.hide:
		how = "stored"
	}
	f.mu.Lock()
	f.how = how
	from, tag := f.from, f.tag
	f.mu.Unlock()
	if how == "failed" {
		from.replyf(tag, protocol.CodeLocalError, "message %d could not be stored for %d members of %s", f.id, failed, f.group)
		return
	}
	from.replyf(tag, protocol.CodeSent, "%d %s %s %s", f.id, how, f.group, protocol.FormatTime(f.time))
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
	return po.postGroupID(s, tag, group, to, text, "")
}

// postGroupID is postGroup of a message with the sender's client id cid
// ("" for none), remembered for a resend.
func (po *postOffice) postGroupID(s *session, tag, group string, to []int64, text, cid string) ([]*mailbox, error) {
	slices.Sort(to)
	boxes := po.boxesOf(slices.Compact(to))
	id, err := po.lockForID(boxes, s)
	if err != nil {
		return nil, err
	}
	// All copies share one item's strings and one event line.
	item := s.newItem()
	*item = store.Item{ID: id, Kind: "GMSG", Sender: s.user, Nick: s.nickname(), Time: time.Now(), Body: group + " " + text, CID: cid,
		GroupKey: store.GroupKey(strings.TrimPrefix(group, "#"))}
	line := formatItem(s.lineFor(item), item)
	f := &fanout{from: s, tag: tag, id: item.ID, group: group, time: item.Time}
	if po.hidden != nil {
		for _, mb := range boxes {
			if po.hidden(s.user, mb.user) {
				f.hide = true
				break
			}
		}
	}
	f.left.Store(int64(len(boxes)) + 1)
	if po.arch != nil {
		f.left.Add(1) // the archive's share
		po.arch.add(archived{item: item, fan: f})
	}
	if cid != "" {
		po.sent.Put(s.user, strings.Clone(cid), &sentRec{id: id, group: group, time: item.Time, fan: f}, item.Time)
		po.journalAppend(dedupe.Entry{Sender: s.user, CID: cid, ID: id, Group: group, Time: item.Time}) // before the caller pumps
	}
	var now []*entry // to save at once: copies for offline members
	for _, mb := range boxes {
		e := s.newEntry()
		e.item, e.line, e.mb, e.fan = item, line, mb, f
		if po.cluster {
			// A copy of its own, stored as the member's own row
			// (clustered.go): acknowledged, it is deleted, no cursor moves.
			e.item = s.newItem()
			*e.item = *item
			e.item.Recipient, e.item.GroupKey = mb.user, ""
		}
		po.enqueueLocked(mb, e)
		if mb.sess == nil && !po.forwardLocked(mb, e) {
			now = append(now, e)
		}
		mb.mu.Unlock()
	}
	po.queueSaves(now)
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
// blocks the sender exactly as a stored one would be answered (a resend
// of it too, when it has a client id).
func (po *postOffice) pretendStored(s *session, tag string, to int64, cid string) {
	rec := &sentRec{id: po.ids.Next(), to: to, time: time.Now(), how: "stored"}
	if cid != "" {
		po.sent.Put(s.user, strings.Clone(cid), rec, rec.time)
	}
	s.send(appendSent(nil, tag, rec.id, rec.how, to, rec.time))
}

// formatItem appends the event line of a stored item: KIND msgid from
// nick time body, where body holds the kind's remaining arguments.
func formatItem(dst []byte, it *store.Item) []byte {
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
	now := time.Now().UnixNano()
	for mb.next < len(mb.queue) && mb.inflight < po.window && mb.inBytes < po.windowBytes {
		e := mb.queue[mb.next].e
		mb.next++
		if e.gone {
			continue
		}
		e.pushed, e.at = true, now
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
	mb := po.existing(user)
	if mb == nil {
		return
	}
	var d acked
	mb.mu.Lock()
	for _, id := range ids {
		if e := mb.findLocked(id); e != nil { // nil: acknowledged already; duplicates are harmless
			po.ackLocked(mb, e, &d)
		}
	}
	po.ackedLocked(mb, &d)
	mb.mu.Unlock()
	d.flush(po, user)
}

// ackUpTo handles ACK ..<upto> from s: every entry pushed to s with an
// id up to upto. A session replaced meanwhile acknowledges nothing (what
// it was sent comes again to the new one).
func (po *postOffice) ackUpTo(user int64, s *session, upto int64) {
	mb := po.existing(user)
	if mb == nil {
		return
	}
	var d acked
	mb.mu.Lock()
	if mb.sess == s {
		for i := 0; i < mb.next && mb.queue[i].id <= upto; i++ {
			if e := mb.queue[i].e; !e.gone && e.pushed {
				po.ackLocked(mb, e, &d)
			}
		}
		po.ackedLocked(mb, &d)
	}
	mb.mu.Unlock()
	d.flush(po, user)
}

// existing returns user's mailbox, or nil when it has none.
func (po *postOffice) existing(user int64) *mailbox {
	po.mu.Lock()
	defer po.mu.Unlock()
	return po.boxes[user]
}

// acked is what an ACK leaves to do in the store: inbox rows to delete,
// with the client ids to keep, and group cursors to move (the furthest
// stored copy acknowledged, per group); and the receipt marks it made
// for senders answered before (receiptLocked). Empty unless stored
// entries were acknowledged.
type acked struct {
	now     int64 // unix ns, taken at the first entry pushed
	del     []int64
	kept    []store.SentID
	cursors []groupCursor
	marks   []receipts.Mark
}

// ackLocked takes e, which is not gone, as acknowledged: its sender hears
// "delivered", and it falls off the queue.
func (po *postOffice) ackLocked(mb *mailbox, e *entry, d *acked) {
	e.acked, e.gone = true, true
	if po.cluster && e.state != stLive {
		mb.noteDeletingLocked(e.item.ID) // refresh.go: its row may still be read back
	}
	mb.live--
	mb.shares.Done(e.item.Sender)
	if e.pushed {
		mb.inflight--
		mb.inBytes -= len(e.line)
		if d.now == 0 {
			d.now = time.Now().UnixNano()
			mb.lastAck = d.now
		}
		mb.sampleLocked(d.now - e.at)
	}
	var mark string
	mark, d.marks = po.receiptLocked(mb, e, d.marks)
	po.tellSender(e, "delivered", mark)
	switch {
	case e.state != stSaved:
	case e.item.GroupKey != "":
		d.cursors = furthest(d.cursors, e.item.GroupKey, e.item.ID)
	default:
		d.del = append(d.del, e.item.ID)
		d.kept = e.keepSentID(d.kept)
	}
}

// ackedLocked finishes an ACK in the mailbox: cursors, compaction, and
// the next entries pushed into the room made.
func (po *postOffice) ackedLocked(mb *mailbox, d *acked) {
	for _, c := range d.cursors {
		po.store.MoveCursor(mb.user, c.group, mb.cursorLocked(c.group, c.to), false)
	}
	mb.compactLocked()
	mb.pumpLocked(po)
}

func (d *acked) flush(po *postOffice, user int64) {
	if len(d.del) > 0 {
		po.store.DeleteInbox(user, d.del, d.kept...)
	}
	if len(d.marks) > 0 && po.onMarks != nil {
		po.onMarks(d.marks)
	}
}

// furthest notes id as acknowledged in group: the highest per group.
func furthest(cursors []groupCursor, group string, id int64) []groupCursor {
	for i := range cursors {
		if cursors[i].group == group {
			cursors[i].to = max(cursors[i].to, id)
			return cursors
		}
	}
	return append(cursors, groupCursor{group: group, to: id})
}

// groupCursor is where a member's cursor in group may move: up to to.
type groupCursor struct {
	group string
	to    int64
}

// cursorLocked returns how far the member's cursor in group may move,
// at most to upto: below the first copy of that group still waiting in
// the mailbox (a cursor never passes what waits; mailbox.go's lock keeps
// new copies out while it looks).
func (mb *mailbox) cursorLocked(group string, upto int64) int64 {
	for _, q := range mb.queue {
		if q.id > upto {
			break
		}
		if !q.e.gone && q.e.item.GroupKey == group {
			return q.id - 1
		}
	}
	return upto
}

// compactLocked drops acknowledged entries from the head of the queue.
func (mb *mailbox) compactLocked() {
	n := 0
	for n < len(mb.queue) && mb.queue[n].e.gone {
		mb.queue[n] = slot{}
		n++
	}
	if rest := len(mb.queue) - n; n > 0 && rest <= 16 {
		// Few left: move them to the front, so that the room before them
		// is used again (slicing the head off would use the array up and
		// make appends allocate again and again).
		copy(mb.queue, mb.queue[n:])
		clear(mb.queue[rest:])
		mb.queue = mb.queue[:rest]
	} else {
		mb.queue = mb.queue[n:]
	}
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
// or "failed" (not stored: the sender must not believe it was sent). A
// private message's "delivered" may carry a receipt mark: "shown" or
// "read" (receiptLocked), else mark is "".
func (po *postOffice) tellSender(e *entry, how, mark string) {
	if e.origin { // forwarded from another node: the answer goes there (forward.go)
		if e.node != "" {
			po.fw.answer(e.node, safeItem{Recipient: e.mb.user, ID: e.item.ID, How: how, Mark: mark})
			e.node = ""
		}
		return
	}
	if e.fan != nil {
		e.fan.done(how)
		e.fan = nil
		return
	}
	if e.hide && how == "delivered" {
		how, mark = "stored", "" // whether it was delivered would say whether the recipient is online
	}
	if e.from == nil || e.holdAnswer(how, mark) {
		return
	}
	if how == "failed" {
		e.from.replyf(e.tag, protocol.CodeLocalError, "message %d could not be stored; not sent", e.item.ID)
	} else {
		var b [128]byte
		line := appendSent(b[:0], e.tag, e.item.ID, how, e.item.Recipient, e.item.Time)
		if mark != "" {
			line = append(append(append(line[:len(line)-1], ' '), mark...), '\n')
		}
		e.from.send(line)
	}
	e.from = nil
	if e.rec != nil {
		e.rec.how, e.rec.e = how, nil
	}
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
	// A node of a cluster reads the store when it, or another node
	// (storedHint), stored something for the user since it started, or
	// something was stored when it started (stored).
	load := mb.stored > 0 || mb.mailed || mb.hinted || po.readAlways.Load()
	mb.mailed, mb.hinted = false, false
	mb.mu.Unlock()

	var rows []store.Item
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
			e := &entry{item: &rows[i], mb: mb, state: stSaved}
			e.line = formatItem(nil, e.item)
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
// goes to the store; what is stored already leaves memory. groups are the
// keys of the user's groups: its cursor in those with stored messages
// moves past everything of theirs it has done with (cursorLocked), so
// that it is not sent again at the next login and the rows can go.
func (po *postOffice) detach(s *session, groups []string) {
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
	if mb.stored == 0 { // else some stored rows are not in memory: no cursor may move
		last := po.ids.Last() // with mb locked, every id for this user up to it is queued already
		for _, g := range groups {
			if po.hasGroupRows(g) {
				po.store.MoveCursor(mb.user, g, mb.cursorLocked(g, last), false)
			}
		}
	}
	mb.sess, mb.syncing = nil, false
	po.unwatchLocked(mb) // what is in memory only is saved now
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
				po.queueSave(e)
			}
			keep = append(keep, q)
		}
	}
	clear(mb.queue[len(keep):])
	mb.queue = keep
}

// groupStored notes that group has a stored message id.
func (po *postOffice) groupStored(group string, id int64) {
	po.gmu.Lock()
	po.groupHi[group] = max(po.groupHi[group], id)
	po.gmu.Unlock()
}

// hasGroupRows reports whether group may have stored messages.
func (po *postOffice) hasGroupRows(group string) bool {
	po.gmu.Lock()
	defer po.gmu.Unlock()
	return po.groupHi[group] > 0
}

// queueSave hands e to the saver, to be stored now.
func (po *postOffice) queueSave(e *entry) {
	po.smu.Lock()
	po.urgent = append(po.urgent, e)
	po.smu.Unlock()
	po.wakeSaver()
}

// queueSaves is queueSave for many.
func (po *postOffice) queueSaves(now []*entry) {
	if len(now) == 0 {
		return
	}
	po.smu.Lock()
	po.urgent = append(po.urgent, now...)
	po.smu.Unlock()
	po.wakeSaver()
}

// watchLocked puts mb, which has a session, among the mailboxes whose
// graces the saver checks; the saver drops it once it holds nothing
// unsaved.
func (po *postOffice) watchLocked(mb *mailbox) {
	if mb.watching {
		return
	}
	mb.watching = true
	po.smu.Lock()
	mb.watchIdx = len(po.watched)
	po.watched = append(po.watched, mb)
	first := len(po.watched) == 1
	po.smu.Unlock()
	if first {
		po.wakeSaver() // it sleeps without a tick while nothing is watched
	}
}

// unwatchLocked takes mb off the watched list.
func (po *postOffice) unwatchLocked(mb *mailbox) {
	if !mb.watching {
		return
	}
	mb.watching = false
	po.smu.Lock()
	i, last := mb.watchIdx, len(po.watched)-1
	po.watched[i] = po.watched[last]
	po.watched[i].watchIdx = i
	po.watched[last] = nil
	po.watched = po.watched[:last]
	po.smu.Unlock()
}

// Bounds of the ack grace. A recipient's grace is its measured time to
// acknowledge plus four times its variation (as TCP's retransmission
// timeout), never less than the server's --ack-grace. An entry pushed to
// it is stored once its grace is over and the recipient has acknowledged
// nothing for twice as long, or once it has waited maxGrace (--ack-grace when
// that is longer): a recipient that is online and acknowledging, only
// slower under load, is waited for rather than written to disk; one that
// stops acknowledging is stored within its grace. An entry not yet pushed
// (the recipient's window is full) is stored once it has waited maxGrace
// since it was posted. Time the server itself lost (the saver woke late:
// the whole process was starved of CPU, and the acknowledgements may be
// waiting unread in its sockets) does not count against recipients.
const maxGrace = 500 * time.Millisecond

// sampleLocked takes one acknowledgement time (ns) into the estimate.
func (mb *mailbox) sampleLocked(d int64) {
	if d < 0 {
		d = 0
	}
	if mb.srtt == 0 {
		mb.srtt, mb.rttvar = d, d/2
		return
	}
	diff := d - mb.srtt
	if diff < 0 {
		diff = -diff
	}
	mb.rttvar += (diff - mb.rttvar) / 4
	mb.srtt += (d - mb.srtt) / 8
}

// graceLocked is how long the recipient has to acknowledge an entry
// pushed to it before it is stored.
func (po *postOffice) graceLocked(mb *mailbox) int64 {
	floor := int64(po.grace)
	return min(max(mb.srtt+4*mb.rttvar, floor), po.maxGrace())
}

func (po *postOffice) maxGrace() int64 { return int64(max(maxGrace, po.grace)) }

// dueLocked appends to batch mb's entries whose grace is over at now
// (unix ns), or all those in memory only with all; it reports whether mb
// still holds entries in memory only (else it is no longer watched).
// Entries are pushed in queue order (queue[:next]; those after wait for
// room in the window), so each walk stops at the first that is not due.
func (po *postOffice) dueLocked(mb *mailbox, now int64, all bool, batch []*entry) ([]*entry, bool) {
	grace, most := po.graceLocked(mb), po.maxGrace()
	silent := now-mb.lastAck >= 2*grace // acknowledged nothing for twice its grace
	unsaved := false
	for i, q := range mb.queue {
		e := q.e
		if i == mb.next {
			break
		}
		if e.gone || e.state != stLive {
			continue
		}
		if !all && e.pushed && !(silent && now-e.at >= grace || now-e.at >= most) {
			unsaved = true
			break
		}
		batch = append(batch, e) // due, or not pushed (a copy posted again: see insertLocked)
	}
	for _, q := range mb.queue[min(mb.next, len(mb.queue)):] {
		e := q.e
		if e.gone || e.state != stLive {
			continue
		}
		if !all && now-e.item.Time.UnixNano() < most {
			return batch, true // those after it were posted later
		}
		batch = append(batch, e)
	}
	return batch, unsaved
}

func (po *postOffice) wakeSaver() {
	select {
	case po.wake <- struct{}{}:
	default:
	}
}

// saver writes entries to the store: at once those of offline recipients,
// those of online ones when their grace is over. While mailboxes are
// watched it checks them every tick, one timer for all.
func (po *postOffice) saver() {
	defer close(po.done)
	tick := min(max(po.grace/4, time.Millisecond), 10*time.Millisecond)
	timer := time.NewTimer(time.Hour)
	var lost int64 // time the server lost to starvation, not counted against recipients
	for {
		now := time.Now().UnixNano()
		batch, watching := po.takeDue(now-lost, false)
		if len(batch) > 0 {
			po.save(batch)
		}
		wait := time.Hour
		if watching {
			wait = tick
		}
		timer.Reset(wait)
		slept := time.Now().UnixNano()
		select {
		case <-po.wake:
		case <-timer.C:
			if late := time.Now().UnixNano() - slept - int64(wait); late > int64(tick) {
				lost += late
			}
		case <-po.quit:
			if batch, _ := po.takeDue(time.Now().UnixNano(), true); len(batch) > 0 {
				po.save(batch)
			}
			po.saving.Wait()
			return
		}
		timer.Stop()
	}
}

// takeDue removes and returns the urgent entries and those of watched
// mailboxes whose grace is over at now (all of them with all); it reports
// whether mailboxes are still watched.
func (po *postOffice) takeDue(now int64, all bool) (batch []*entry, watching bool) {
	po.smu.Lock()
	batch, po.urgent = po.urgent, nil
	po.scan = append(po.scan[:0], po.watched...)
	po.smu.Unlock()
	for _, mb := range po.scan {
		mb.mu.Lock()
		var unsaved bool
		batch, unsaved = po.dueLocked(mb, now, all, batch)
		if !unsaved || mb.sess == nil {
			po.unwatchLocked(mb)
		}
		mb.mu.Unlock()
	}
	clear(po.scan)
	po.smu.Lock()
	watching = len(po.watched) > 0
	po.smu.Unlock()
	return batch, watching
}

// save claims the batch's live, unacknowledged entries and writes them.
func (po *postOffice) save(batch []*entry) {
	var claimed []*entry
	var items []store.Item
	for _, e := range batch {
		e.mb.mu.Lock()
		if !e.gone && e.state == stLive {
			e.state = stSaving
			claimed = append(claimed, e)
			it := *e.item
			it.Recipient = e.mb.user
			items = append(items, it)
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
	kept := make(map[int64][]store.SentID)
	var rows []*entry // one copy of each group message stored
	var pin unpinned
	var hint []int64 // recipients whose messages were stored, for the other nodes' next logins
	for _, e := range claimed {
		if err == nil && e.item.GroupKey != "" && (len(rows) == 0 || rows[len(rows)-1].item.ID != e.item.ID) {
			po.groupStored(e.item.GroupKey, e.item.ID)
			rows = append(rows, e)
		}
		mb := e.mb
		mb.mu.Lock()
		switch {
		case err != nil:
			// Not safe: the sender must not believe it was sent.
			e.state = stLive
			po.tellSender(e, "failed", "")
			if mb.sess == nil && !e.gone {
				e.gone = true
				mb.live--
				mb.shares.Done(e.item.Sender)
				mb.compactLocked()
			}
		case e.acked && e.item.GroupKey != "":
			// Stored once for the group: this member's cursor passes it
			// with its next stored copy acknowledged, or when it leaves.
			e.state = stSaved
		case e.acked:
			e.state = stSaved
			dels[mb.user] = append(dels[mb.user], e.item.ID)
			kept[mb.user] = e.keepSentID(kept[mb.user])
		default:
			e.state = stSaved
			if po.storedHint != nil && (len(hint) == 0 || hint[len(hint)-1] != mb.user) {
				hint = append(hint, mb.user)
			}
			testKillBeforeAnswer(e.item)
			po.tellSender(e, "stored", "")
			if mb.sess == nil {
				e.gone = true
				mb.live--
				if po.cluster {
					mb.mailed = true // its node merges it; nothing here counts it
				} else {
					mb.stored++
				}
				mb.compactLocked()
				po.forwardStoredLocked(mb, e) // to its node, if online on another (forward.go)
			} else {
				pin.unpin(e) // it stays until its recipient acknowledges it
			}
		}
		mb.mu.Unlock()
	}
	for user, ids := range dels {
		po.store.DeleteInbox(user, ids, kept[user]...)
	}
	if len(hint) > 0 && po.storedHint != nil {
		slices.Sort(hint)
		po.storedHint(slices.Compact(hint))
	}
	for _, e := range rows {
		po.passOwn(e.item.Sender, e.item.GroupKey, e.item.ID)
	}
}

// unpinned gives entries that stay in memory copies of their own of what
// they held from an arena (item strings, event line, tag): an entry can
// wait long for a recipient that does not acknowledge (up to --max-queue
// of them), and must not keep the arena's chunks, each shared with many
// other messages, alive meanwhile (it keeps only its entry's chunk, a few
// entries). The copies of a group message share their copy.
type unpinned struct {
	from, to *store.Item
	line     []byte
}

func (u *unpinned) unpin(e *entry) {
	if e.item != u.from {
		it := *e.item
		it.Nick, it.Body, it.CID, it.GroupKey = strings.Clone(it.Nick), strings.Clone(it.Body), strings.Clone(it.CID), strings.Clone(it.GroupKey)
		u.from, u.to, u.line = e.item, &it, bytes.Clone(e.line)
	}
	e.item, e.line, e.tag = u.to, u.line, strings.Clone(e.tag)
}

// passOwn moves the cursor of the sender of a stored group message past
// it when nothing of the group waits for the sender before it: no member
// gets its own messages, and without this the row would wait for the
// sender's next logout to be deleted.
func (po *postOffice) passOwn(sender int64, group string, id int64) {
	mb := po.box(sender)
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.stored == 0 { // else stored rows for it are not in memory: cursorLocked cannot see them
		po.store.MoveCursor(sender, group, mb.cursorLocked(group, id), false)
	}
}

// close saves what is still only in memory and stops the saver.
func (po *postOffice) close() {
	close(po.quit)
	<-po.done
	if po.arch != nil {
		po.arch.close()
	}
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

// keepSentID appends e's client id to kept when it has one: its stored
// row is about to be deleted, and the id must outlive it (sent_ids).
func (e *entry) keepSentID(kept []store.SentID) []store.SentID {
	if e.item.CID == "" {
		return kept
	}
	return append(kept, store.SentID{Sender: e.item.Sender, CID: e.item.CID, ID: e.item.ID, Time: e.item.Time})
}

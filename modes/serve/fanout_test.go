package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/serve/store"
	"qchat/protocol"
)

// recorder is a connection's far end that keeps what it was written.
type recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	return r.buf.Write(p)
}

// ids returns the message ids of the durable events written so far.
func (r *recorder) ids(t *testing.T) []int64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []int64
	for _, l := range strings.Split(strings.TrimSuffix(r.buf.String(), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		id, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("line %q", l)
		}
		ids = append(ids, id)
	}
	return ids
}

// testPostOffice is a post office over a fresh store, with sessions that
// write to recorders.
type testPostOffice struct {
	*postOffice
	t   *testing.T
	srv *Server
}

func newTestPostOffice(t *testing.T, maxQueue int) *testPostOffice {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ids, err := newIDAlloc(ctx, st, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	po, err := newPostOffice(ctx, st, ids, testLogger(), time.Hour, maxQueue, 1024, cfg.MaxOutbound/2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(po.close)
	return &testPostOffice{postOffice: po, t: t, srv: &Server{cfg: cfg}}
}

// online logs user in; what it is sent goes to the recorder.
func (po *testPostOffice) online(user int64) (*session, *recorder) {
	rec := &recorder{}
	s := &session{srv: po.srv, conn: discardConn{}, user: user, nick: "u" + strconv.FormatInt(user, 10), start: time.Now()}
	s.out = protocol.NewOutbox(rec, 1<<30, time.Second, nil)
	po.attach(context.Background(), s)
	return s, rec
}

// flushed waits until everything s was sent is written.
func flushed(t *testing.T, s *session) {
	t.Helper()
	if !s.out.Close(ioWait) {
		t.Fatal("outbox not flushed")
	}
}

// sendGroup posts a group message and sends the copies.
func (po *testPostOffice) sendGroup(s *session, to []int64, text string) error {
	boxes, err := po.postGroup(s, "", "#g", to, text)
	po.pumpAll(boxes)
	return err
}

// TestGroupCopiesInIDOrder: an online member gets its events in id order
// even while group messages from two senders and private messages reach
// it at the same time.
func TestGroupCopiesInIDOrder(t *testing.T) {
	po := newTestPostOffice(t, 10000)
	const members, posts = 200, 100
	alice, _ := po.online(1)
	bob, _ := po.online(2)
	carol, _ := po.online(3)
	to := make([]int64, members)
	sessions := make([]*session, members)
	recs := make([]*recorder, members)
	for i := range to {
		to[i] = int64(100 + i)
		sessions[i], recs[i] = po.online(to[i])
	}
	var wg sync.WaitGroup
	for _, s := range []*session{alice, bob} {
		wg.Go(func() {
			for i := range posts {
				if err := po.sendGroup(s, append([]int64(nil), to...), "g"+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 3 * posts {
			if err := po.post(carol, "", to[members-1-i%10], "p"+strconv.Itoa(i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	for i, s := range sessions {
		checkMailbox(t, po.box(to[i]))
		flushed(t, s)
		ids := recs[i].ids(t)
		want := 2 * posts
		if i >= members-10 {
			want += 3 * posts / 10
		}
		if len(ids) != want {
			t.Fatalf("member %d got %d events, want %d", to[i], len(ids), want)
		}
		for j := 1; j < len(ids); j++ {
			if ids[j] <= ids[j-1] {
				t.Fatalf("member %d got id %d after %d", to[i], ids[j], ids[j-1])
			}
		}
	}
}

// TestGroupQueueFull: a member whose queue is full makes the post fail
// before anything is sent to anyone, and concurrent posts never take a
// queue past its limit.
func TestGroupQueueFull(t *testing.T) {
	const limit = 20
	po := newTestPostOffice(t, limit)
	alice, _ := po.online(1)
	to := []int64{100, 101, 102}
	recs := make([]*recorder, len(to))
	sessions := make([]*session, len(to))
	for i, u := range to[:2] {
		sessions[i], recs[i] = po.online(u)
	}
	// 102 is offline with a full queue.
	for i := range limit {
		if err := po.post(alice, "", 102, "p"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	err := po.sendGroup(alice, append([]int64(nil), to...), "too many")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeQueueFull {
		t.Fatalf("post to a group with a full member: %v, want %d", err, protocol.CodeQueueFull)
	}
	for i := range 2 {
		flushed(t, sessions[i])
		if ids := recs[i].ids(t); len(ids) != 0 {
			t.Errorf("member %d got %v from a refused post", to[i], ids)
		}
	}

	// Two senders race for the last places of the online members' queues.
	po = newTestPostOffice(t, limit)
	a, _ := po.online(1)
	b, _ := po.online(2)
	var members []int64
	for u := int64(100); u < 150; u++ {
		po.online(u)
		members = append(members, u)
	}
	var wg sync.WaitGroup
	for _, s := range []*session{a, b} {
		wg.Go(func() {
			for range limit {
				po.sendGroup(s, append([]int64(nil), members...), "x")
			}
		})
	}
	wg.Wait()
	for _, u := range members {
		mb := po.box(u)
		mb.mu.Lock()
		n := mb.live + mb.stored
		mb.mu.Unlock()
		if n > limit {
			t.Errorf("member %d holds %d messages, the limit is %d", u, n, limit)
		}
		checkMailbox(t, mb)
	}
}

// TestGroupCopiesWaitForPump: postGroup queues the copies without sending
// them; whatever pumps a member's mailbox next sends them, before what
// came after them.
func TestGroupCopiesWaitForPump(t *testing.T) {
	po := newTestPostOffice(t, 100)
	alice, _ := po.online(1)
	carol, _ := po.online(3)
	bob, rec := po.online(2)
	boxes, err := po.postGroup(alice, "", "#g", []int64{2}, "group")
	if err != nil {
		t.Fatal(err)
	}
	mb := boxes[0]
	mb.mu.Lock()
	pushed := mb.next
	mb.mu.Unlock()
	if pushed != 0 {
		t.Fatalf("%d copies pushed before the pump", pushed)
	}
	if err := po.post(carol, "", 2, "private"); err != nil {
		t.Fatal(err)
	}
	po.pumpAll(boxes) // nothing left to send
	flushed(t, bob)
	ids := rec.ids(t)
	if len(ids) != 2 || ids[0] >= ids[1] {
		t.Fatalf("bob got ids %v, want the group copy, then the private message", ids)
	}
}

// TestGroupBurst: group messages that a sender pipelines reach every
// member once and in order, and the sender hears of each, though nothing
// follows them.
func TestGroupBurst(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	a := dial(t, srv, "a")
	register(a, "alice", "pw-alice")
	a.login("alice", "pw-alice")
	a.want("CREATE #burst", protocol.CodeOK)
	members := make([]*client, 3)
	for i := range members {
		c := dial(t, srv, fmt.Sprint("m", i))
		nick := fmt.Sprint("member", i)
		register(c, nick, "pw-pw")
		c.login(nick, "pw-pw")
		c.want("JOIN #burst", protocol.CodeOK)
		members[i] = c
	}
	const n = 50
	var burst strings.Builder
	for i := range n {
		fmt.Fprintf(&burst, "@b%d MSG #burst m%d\n", i, i)
	}
	a.conn.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := io.WriteString(a.conn, burst.String()); err != nil {
		t.Fatal(err)
	}
	for _, c := range members {
		var last int64
		for i := range n {
			l := c.waitFor("a GMSG", func(l protocol.Line) bool { return l.Kind == "GMSG" })
			id, _ := strconv.ParseInt(l.Args[0], 10, 64)
			if id <= last || l.Args[4] != "#burst" || l.Args[5] != fmt.Sprint("m", i) {
				t.Fatalf("%s: message %d is %q after id %d", c.name, i, l.Args, last)
			}
			last = id
			c.send(fmt.Sprint("ACK ", id))
		}
	}
	for i := range n {
		tag := fmt.Sprint("b", i)
		l := a.waitFor("the 250 for "+tag, func(l protocol.Line) bool { return l.Tag == tag })
		if f := strings.Fields(l.Text); l.Code != protocol.CodeSent || len(f) < 3 || f[1] != "delivered" || f[2] != "#burst" {
			t.Fatalf("%s: %d %s", tag, l.Code, l.Text)
		}
	}
	for _, c := range members {
		c.quiet()
	}
}

// checkMailbox checks what the mailbox code relies on: the queue in id
// order, each id once, and live counting the entries not gone.
func checkMailbox(t *testing.T, mb *mailbox) {
	t.Helper()
	mb.mu.Lock()
	defer mb.mu.Unlock()
	live := 0
	for i, q := range mb.queue {
		if q.id != q.e.item.ID || (i > 0 && q.id <= mb.queue[i-1].id) {
			t.Fatalf("mailbox %d: queue out of order at %d: %d after %d", mb.user, i, q.id, mb.queue[max(0, i-1)].id)
		}
		if !q.e.gone {
			live++
		}
	}
	if live != mb.live {
		t.Fatalf("mailbox %d: live %d, but %d entries are not gone", mb.user, mb.live, live)
	}
}

// TestAttachMerges: at login, the store's rows and what is in memory make
// one queue in id order, each message once; an entry that is gone from
// memory comes back from its row.
func TestAttachMerges(t *testing.T) {
	po := newTestPostOffice(t, 100)
	const bob = 2
	now := time.Now()
	item := func(id int64) store.Item {
		return store.Item{Recipient: bob, ID: id, Kind: "MSG", Sender: 1, Nick: "alice", Time: now, Body: "m" + strconv.FormatInt(id, 10)}
	}
	saved := make(chan error, 1)
	po.store.SaveInbox([]store.Item{item(10), item(11), item(12)}, func(err error) { saved <- err })
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	// In memory: 11 (also stored), 12 acknowledged while it was being
	// saved (gone, its row not yet deleted), 13 not stored yet.
	mb := po.box(bob)
	mb.mu.Lock()
	for _, id := range []int64{11, 12, 13} {
		it := item(id)
		e := &entry{item: &it, mb: mb, state: stSaved}
		e.line = formatItem(nil, e.item)
		po.enqueueLocked(mb, e)
		switch id {
		case 12:
			e.acked, e.gone = true, true
			mb.live--
		case 13:
			e.state = stLive
		}
	}
	mb.stored = 2 // 10 and 12
	mb.mu.Unlock()

	s, rec := po.online(bob)
	flushed(t, s)
	if ids := fmt.Sprint(rec.ids(t)); ids != "[10 11 12 13]" {
		t.Fatalf("bob got %s, want [10 11 12 13]", ids)
	}
	checkMailbox(t, mb)
	po.ack(bob, []int64{13, 10, 12, 11, 11, 99})
	checkMailbox(t, mb)
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.live != 0 || len(mb.queue) != 0 || mb.inflight != 0 || mb.inBytes != 0 {
		t.Fatalf("after the ACKs: live %d, queue %d, in flight %d (%d bytes)", mb.live, len(mb.queue), mb.inflight, mb.inBytes)
	}
}

// TestIDsRunOut: when the reserved ids run out, a post waits for the next
// reservation with no mailbox locked, since the store's writer, which
// commits it, may need that mailbox first (in a callback of the batch
// before, as saved does).
func TestIDsRunOut(t *testing.T) {
	for _, group := range []bool{false, true} {
		po := newTestPostOffice(t, 100)
		alice, _ := po.online(1)
		bob, rec := po.online(2)
		mb := po.box(2)
		// The writer is busy with a batch whose callback, once the post
		// has run out of ids (the reservation then waits behind this
		// batch), needs bob's mailbox.
		proceed, called := make(chan struct{}), make(chan struct{})
		po.store.SaveInbox([]store.Item{{Recipient: 99, ID: 1, Kind: "MSG", Sender: 98, Nick: "x", Time: time.Now(), Body: "x"}}, func(error) {
			<-proceed
			mb.mu.Lock()
			mb.mu.Unlock()
			close(called)
		})
		po.ids.mu.Lock()
		po.ids.next = po.ids.hi + 1
		po.ids.mu.Unlock()
		go func() { // until the post has run out of ids (bounded: see below)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for deadline := time.Now().Add(ioWait); time.Now().Before(deadline); <-tick.C {
				po.ids.mu.Lock()
				out := po.ids.reserving
				po.ids.mu.Unlock()
				if out {
					break
				}
			}
			close(proceed)
		}()

		posted := make(chan error, 1)
		go func() {
			if !group {
				posted <- po.post(alice, "", 2, "x")
				return
			}
			boxes, err := po.postGroup(alice, "", "#g", []int64{2}, "x")
			po.pumpAll(boxes)
			posted <- err
		}()
		select {
		case err := <-posted:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(ioWait):
			// Deadlocked: give ids by hand so that the test can end.
			po.ids.mu.Lock()
			po.ids.hi += idBlock
			po.ids.cond.Broadcast()
			po.ids.mu.Unlock()
			<-posted
			t.Fatalf("group %v: the post waited for ids with bob's mailbox locked, and the writer for the mailbox", group)
		}
		<-called
		flushed(t, bob)
		if ids := rec.ids(t); len(ids) != 1 {
			t.Fatalf("group %v: bob got %v", group, ids)
		}
	}
}

// TestGroupSkipsBlockers: a group message reaches every member but its
// sender and those who block the sender, and the sender is not told.
func TestGroupSkipsBlockers(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	clients := map[string]*client{}
	for _, nick := range []string{"alice", "bob", "carol"} {
		c := dial(t, srv, nick)
		register(c, nick, "pw-pw")
		c.login(nick, "pw-pw")
		clients[nick] = c
	}
	alice, bob, carol := clients["alice"], clients["bob"], clients["carol"]
	alice.want("CREATE #club", protocol.CodeOK)
	bob.want("JOIN #club", protocol.CodeOK)
	carol.want("JOIN #club", protocol.CodeOK)
	bob.want("BLOCK carol", protocol.CodeOK)
	carol.send("@c1 MSG #club hi all")
	g := alice.waitFor("a GMSG", func(l protocol.Line) bool { return l.Kind == "GMSG" })
	if g.Args[2] != "carol" || g.Args[5] != "hi all" {
		t.Fatalf("alice got %q", g.Args)
	}
	alice.send("ACK " + g.Args[0])
	l := carol.waitFor("the 250", func(l protocol.Line) bool { return l.Tag == "c1" })
	if f := strings.Fields(l.Text); l.Code != protocol.CodeSent || len(f) < 2 || f[0] != g.Args[0] || f[1] != "delivered" {
		t.Fatalf("carol: %d %s", l.Code, l.Text)
	}
	bob.quiet()
}

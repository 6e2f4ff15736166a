package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"qchat/modes/serve/store"
)

func testInbox(h *harness) {
	alice, bob, carol := h.user("alice"), h.user("bob"), h.user("carol")
	now := time.Now()
	items := []store.Item{
		{Recipient: bob, ID: 12, Kind: "MSG", Sender: alice, Nick: "alice", Time: now, Body: "second", CID: "k.2"},
		{Recipient: bob, ID: 11, Kind: "REQUEST", Sender: carol, Nick: "carol", Time: now.Add(-time.Hour), Body: "friend"},
		{Recipient: carol, ID: 13, Kind: "NOTICE", Sender: alice, Nick: "alice", Time: now, Body: "friend-accepted"},
		{Recipient: bob, ID: 14, Kind: "MSG", Sender: alice, Nick: "小明", Time: now, Body: "中文  two spaces 'quoted' \"and\" \\"},
	}
	h.save(items...)
	h.reopen()
	got, err := h.st.Inbox(h.ctx, bob)
	if err != nil {
		h.Fatal(err)
	}
	want := []store.Item{items[1], items[0], items[3]} // in id order
	if len(got) != len(want) {
		h.Fatalf("Inbox(bob) = %+v, want %d items", got, len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Recipient != w.Recipient || g.ID != w.ID || g.Kind != w.Kind || g.Sender != w.Sender || g.Nick != w.Nick ||
			g.Body != w.Body || g.CID != w.CID || g.GroupKey != "" || g.Time.UnixMilli() != w.Time.UnixMilli() {
			h.Errorf("Inbox(bob)[%d] = %+v, want %+v (time to the millisecond)", i, g, w)
		}
	}
	counts, err := h.st.InboxSenders(h.ctx)
	if err != nil {
		h.Fatal(err)
	}
	if want := map[[2]int64]int{{bob, alice}: 2, {bob, carol}: 1, {carol, alice}: 1}; !mapsEqual(counts, want) {
		h.Errorf("InboxSenders = %v, want %v", counts, want)
	}

	h.st.DeleteInbox(bob, []int64{12, 99}, store.SentID{Sender: alice, CID: "k.2", ID: 12, Time: now})
	h.sync()
	if got, want := h.inbox(bob), "11:REQUEST:friend 14:MSG:"+items[3].Body; got != want {
		h.Errorf("after DeleteInbox: %s, want %s", got, want)
	}
	counts, _ = h.st.InboxSenders(h.ctx)
	if want := map[[2]int64]int{{bob, alice}: 1, {bob, carol}: 1, {carol, alice}: 1}; !mapsEqual(counts, want) {
		h.Errorf("InboxSenders after a delete = %v, want %v", counts, want)
	}
	if got := h.inbox(alice); got != "" {
		h.Errorf("alice's inbox holds %s", got)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// testSaveTwice: saving what is stored already (a group message's copies
// in two batches, a resend's item) is no error and stores it once.
func testSaveTwice(h *harness) {
	a, b, c := h.user("a"), h.user("b"), h.user("c")
	must(h, "create", h.st.CreateGroup(h.ctx, "g", a, false, time.Now(), 0))
	must(h, "b joins", h.st.AddMember(h.ctx, "g", b, 0))
	must(h, "c joins", h.st.AddMember(h.ctx, "g", c, 0))
	now := time.Now()
	g := store.Item{ID: 5, Kind: "GMSG", Sender: a, Nick: "a", Time: now, Body: "#g hi", GroupKey: "g"}
	gb, gc := g, g
	gb.Recipient, gc.Recipient = b, c
	p := store.Item{Recipient: b, ID: 6, Kind: "MSG", Sender: a, Nick: "a", Time: now, Body: "private"}
	h.save(gb, p)
	h.save(gc, p)
	if got, want := h.inbox(b), "5:GMSG:#g hi 6:MSG:private"; got != want {
		h.Errorf("b's inbox %s, want %s", got, want)
	}
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 1 {
		h.Errorf("%d group rows, want 1", n)
	}
}

// testDeletesFromCallbacks: the writer's callbacks queue deletions
// (messages acknowledged while being saved: thousands at once for a big
// group) without waiting for the writer, which would wait for itself.
func testDeletesFromCallbacks(h *harness) {
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	var items []store.Item
	for i := range 3 {
		items = append(items, store.Item{Recipient: 1001, ID: int64(i + 1), Kind: "MSG", Sender: 1000, Nick: "a", Time: time.Now(), Body: "x"})
	}
	saved := make(chan error, 1)
	h.st.SaveInbox(items, func(err error) {
		for i := range 10000 { // more than the job queue holds
			h.st.DeleteInbox(int64(5000+i), []int64{1})
		}
		h.st.DeleteInbox(1001, []int64{1, 2})
		saved <- err
	})
	select {
	case err := <-saved:
		if err != nil {
			h.Fatal(err)
		}
	case <-ctx.Done():
		h.Fatal("the writer is stuck in its own callback")
	}
	// The writer still works, and the deletions were done.
	if _, err := h.st.CreateUser(ctx, "after", "h"); err != nil {
		h.Fatal(err)
	}
	if got := h.inbox(1001); got != "3:MSG:x" {
		h.Fatalf("inbox after deletes: %s", got)
	}
}

// groupOf makes a group of owner a with members, everyone's cursor at 0.
func (h *harness) groupOf(name string, owner int64, members ...int64) {
	h.Helper()
	must(h, "create "+name, h.st.CreateGroup(h.ctx, name, owner, false, time.Now(), 0))
	for _, m := range members {
		must(h, "join "+name, h.st.AddMember(h.ctx, name, m, 0))
	}
}

// post saves a group message once for each member but its sender, as the
// server does for members that are offline.
func (h *harness) post(group string, id, from int64, cid, text string, to ...int64) {
	h.Helper()
	var items []store.Item
	for _, r := range to {
		items = append(items, store.Item{Recipient: r, ID: id, Kind: "GMSG", Sender: from, Nick: "n", Time: time.Now(),
			Body: "#" + group + " " + text, CID: cid, GroupKey: store.GroupKey(group)})
	}
	h.save(items...)
}

func testGroupStoredOnce(h *harness) {
	a, b, c, d := h.user("a"), h.user("b"), h.user("c"), h.user("d")
	h.groupOf("G", a, b, c, d)
	h.post("G", 10, a, "c1", "hello", b, c, d)
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 1 {
		h.Errorf("group_msgs holds %d rows for one message to 3 members, want 1", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM inbox`); n != 0 {
		h.Errorf("inbox holds %d rows, want none (the group row serves every member)", n)
	}
	for _, m := range []int64{b, c, d} {
		if got := h.inbox(m); got != "10:GMSG:#G hello" {
			h.Errorf("member %d's inbox: %q", m, got)
		}
	}
	if got := h.inbox(a); got != "" {
		h.Errorf("the sender gets its own message: %s", got)
	}
	if hi, err := h.st.GroupsStored(h.ctx); err != nil || !mapsEqual(hi, map[string]int64{"g": 10}) {
		h.Errorf("GroupsStored = %v, %v", hi, err)
	}
	counts, _ := h.st.InboxSenders(h.ctx)
	if want := map[[2]int64]int{{b, a}: 1, {c, a}: 1, {d, a}: 1}; !mapsEqual(counts, want) {
		h.Errorf("InboxSenders = %v, want %v", counts, want)
	}
	f, err := h.st.FindSent(h.ctx, a, "c1")
	if err != nil || f.ID != 10 || f.Acked || !slices.Equal(f.Pending, []int64{b, c, d}) {
		h.Errorf("FindSent(c1) = %+v, %v; want 10 pending for %d %d %d", f, err, b, c, d)
	}

	// d blocks a: nothing from a waits for d any more.
	must(h, "block", h.st.Block(h.ctx, d, a, true))
	if got := h.inbox(d); got != "" {
		h.Errorf("d blocks a and still gets %s", got)
	}
	counts, _ = h.st.InboxSenders(h.ctx)
	if _, ok := counts[[2]int64{d, a}]; ok {
		h.Errorf("InboxSenders counts a blocked sender: %v", counts)
	}

	// b and c take it; the row stays for the cursors below it.
	h.st.MoveCursor(b, "g", 10, false)
	h.st.MoveCursor(c, "g", 10, false)
	h.sync()
	if got := h.inbox(b); got != "" {
		h.Errorf("b's cursor passed it, and b still gets %s", got)
	}
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 1 {
		h.Fatalf("%d rows once b and c took it; want 1 (a's and d's cursors are below)", n)
	}
	h.st.MoveCursor(a, "g", 10, false)
	h.st.MoveCursor(d, "g", 10, false)
	h.sync()
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 0 {
		h.Errorf("%d rows once every cursor passed it, want 0", n)
	}
	h.reopen()
	f, err = h.st.FindSent(h.ctx, a, "c1")
	if err != nil || f.ID != 10 || !f.Acked || len(f.Pending) != 0 {
		h.Errorf("FindSent(c1) once the row went = %+v, %v; want 10, acknowledged", f, err)
	}
	if hi, _ := h.st.GroupsStored(h.ctx); len(hi) != 0 {
		h.Errorf("GroupsStored = %v, want none", hi)
	}
}

func testGroupCursors(h *harness) {
	a, b, c, e := h.user("a"), h.user("b"), h.user("c"), h.user("e")
	h.groupOf("g", a, b, c)
	h.post("g", 10, a, "", "ten", b, c)
	h.post("g", 20, b, "", "twenty", a, c)
	// e joins with its cursor at 20: nothing stored before that is for e.
	must(h, "e joins", h.st.AddMember(h.ctx, "g", e, 20))
	h.post("g", 21, a, "", "twenty-one", b, c, e)
	for _, tc := range []struct {
		user int64
		want string
	}{
		{a, "20:GMSG:#g twenty"},
		{b, "10:GMSG:#g ten 21:GMSG:#g twenty-one"},
		{c, "10:GMSG:#g ten 20:GMSG:#g twenty 21:GMSG:#g twenty-one"},
		{e, "21:GMSG:#g twenty-one"},
	} {
		if got := h.inbox(tc.user); got != tc.want {
			h.Errorf("inbox of %d: %q, want %q", tc.user, got, tc.want)
		}
	}
	// A cursor moves up only, unless told to go lower; the moves apply in
	// the order queued.
	for _, tc := range []struct {
		to    int64
		lower bool
		want  string
	}{
		{20, false, "21:GMSG:#g twenty-one"},
		{10, false, "21:GMSG:#g twenty-one"},                                 // never down
		{9, true, "10:GMSG:#g ten 20:GMSG:#g twenty 21:GMSG:#g twenty-one"},  // a resend of 10: below it
		{25, true, "10:GMSG:#g ten 20:GMSG:#g twenty 21:GMSG:#g twenty-one"}, // lower never goes up
	} {
		h.st.MoveCursor(c, "g", tc.to, tc.lower)
		h.sync()
		if got := h.inbox(c); got != tc.want {
			h.Errorf("after MoveCursor(c, %d, lower %v): %q, want %q", tc.to, tc.lower, got, tc.want)
		}
	}
	h.st.MoveCursor(c, "g", 30, false)
	h.st.MoveCursor(c, "g", 19, true)
	h.st.MoveCursor(c, "g", 21, false)
	h.sync()
	if got := h.inbox(c); got != "" {
		h.Errorf("after up, lower, up: %q, want nothing (applied in order)", got)
	}
	// A row goes once every cursor passed it: none yet, a's and b's
	// cursors are at 0.
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 3 {
		h.Errorf("%d rows, want 3 (a's cursor is at 0)", n)
	}
	h.st.MoveCursor(a, "g", 15, false)
	h.st.MoveCursor(b, "g", 15, false)
	h.sync()
	if n := h.count(`SELECT COUNT(*) FROM group_msgs WHERE id = 10`); n != 0 {
		h.Errorf("row 10 stays after every cursor passed it")
	}
	if hi, _ := h.st.GroupsStored(h.ctx); !mapsEqual(hi, map[string]int64{"g": 21}) {
		h.Errorf("GroupsStored = %v", hi)
	}
}

func testGroupMemberLeaves(h *harness) {
	a, b, c := h.user("a"), h.user("b"), h.user("c")
	h.groupOf("g", a, b, c)
	h.post("g", 10, a, "x1", "one", b, c)
	h.post("g", 11, a, "x2", "two", b, c)
	h.st.MoveCursor(a, "g", 11, false)
	h.st.MoveCursor(b, "g", 11, false)
	h.sync()
	// c held both rows; when it leaves they go, their client ids kept.
	must(h, "c leaves", h.st.RemoveMember(h.ctx, "g", c, 0, false))
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 0 {
		h.Errorf("%d rows after the only member waiting left", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM sent_ids WHERE sender = $1`, a); n != 2 {
		h.Errorf("%d client ids kept, want 2", n)
	}
	// The last members leave a group whose rows wait: all go.
	h.post("g", 12, b, "x3", "three", a)
	must(h, "a leaves", h.st.RemoveMember(h.ctx, "g", a, b, false))
	must(h, "b leaves last", h.st.RemoveMember(h.ctx, "g", b, 0, true))
	if n := h.count(`SELECT COUNT(*) FROM group_msgs`); n != 0 {
		h.Errorf("%d rows after the group went", n)
	}
	if f, err := h.st.FindSent(h.ctx, b, "x3"); err != nil || f.ID != 12 || !f.Acked {
		h.Errorf("FindSent(x3) = %+v, %v", f, err)
	}
}

func testFindSent(h *harness) {
	a, b := h.user("a"), h.user("b")
	now := time.Now()
	h.save(store.Item{Recipient: b, ID: 7, Kind: "MSG", Sender: a, Nick: "a", Time: now, Body: "x", CID: "q.1"},
		store.Item{Recipient: b, ID: 8, Kind: "MSG", Sender: a, Nick: "a", Time: now, Body: "no cid"})
	for _, tc := range []struct {
		sender int64
		cid    string
		want   string
	}{
		{a, "q.1", fmt.Sprintf("7 pending [%d] acked false", b)},
		{b, "q.1", "0 pending [] acked false"}, // another sender's
		{a, "q.2", "0 pending [] acked false"},
		{a, "", "0 pending [] acked false"}, // no cid finds nothing
	} {
		f, err := h.st.FindSent(h.ctx, tc.sender, tc.cid)
		if err != nil {
			h.Fatal(err)
		}
		got := fmt.Sprintf("%d pending %v acked %v", f.ID, f.Pending, f.Acked)
		if got != tc.want {
			h.Errorf("FindSent(%d, %q) = %s, want %s", tc.sender, tc.cid, got, tc.want)
		}
		if f.ID != 0 && f.Time.UnixMilli() != now.UnixMilli() {
			h.Errorf("FindSent time %v, want %v", f.Time, now)
		}
	}
	h.st.DeleteInbox(b, []int64{7}, store.SentID{Sender: a, CID: "q.1", ID: 7, Time: now})
	h.st.DeleteInbox(b, []int64{7}, store.SentID{Sender: a, CID: "q.1", ID: 7, Time: now}) // again: harmless
	h.reopen()
	f, err := h.st.FindSent(h.ctx, a, "q.1")
	if err != nil || f.ID != 7 || !f.Acked || len(f.Pending) != 0 || f.Time.UnixMilli() != now.UnixMilli() {
		h.Errorf("FindSent(q.1) after its ACK = %+v, %v", f, err)
	}
}

// testSentIDsExpire: a client id is kept for a day (store.SentIDsKept),
// then forgotten.
func testSentIDsExpire(h *harness) {
	old := time.Now().Add(-store.SentIDsKept - time.Hour).UnixMilli()
	h.exec(`INSERT INTO sent_ids (sender, cid, msgid, time) VALUES (1000, 'old', 5, $1)`, old)
	h.exec(`INSERT INTO sent_ids (sender, cid, msgid, time) VALUES (1000, 'new', 6, $1)`, time.Now().UnixMilli())
	h.reopen()
	h.sync()
	for cid, want := range map[string]int64{"old": 0, "new": 6} {
		if f, err := h.st.FindSent(h.ctx, 1000, cid); err != nil || f.ID != want {
			h.Errorf("FindSent(%s) = %+v, %v; want id %d", cid, f, err, want)
		}
	}
}

func testReserveIDs(h *harness) {
	lo, hi, err := h.st.ReserveIDs(h.ctx, 100)
	if err != nil || hi-lo != 100 || lo < 0 {
		h.Fatalf("ReserveIDs(100) = (%d, %d], %v", lo, hi, err)
	}
	var mu sync.Mutex
	var ranges [][2]int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				l, u, err := h.st.ReserveIDs(h.ctx, 7)
				if err != nil || u-l != 7 {
					h.Errorf("ReserveIDs(7) = (%d, %d], %v", l, u, err)
					return
				}
				mu.Lock()
				ranges = append(ranges, [2]int64{l, u})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(ranges, func(x, y [2]int64) int { return int(x[0] - y[0]) })
	last := hi
	for _, r := range ranges {
		if r[0] < last {
			h.Fatalf("range (%d, %d] overlaps one before it (up to %d)", r[0], r[1], last)
		}
		last = r[1]
	}
	h.reopen()
	if l, _, err := h.st.ReserveIDs(h.ctx, 1); err != nil || l < last {
		h.Fatalf("after reopen ReserveIDs starts at %d, %v; %d was reserved before", l, err, last)
	}
}

// testSchemaTooNew: a database that a newer qchat migrated is refused,
// not written to by code that does not know its schema.
func testSchemaTooNew(h *harness) {
	h.exec(`INSERT INTO schema_version (version, what, applied) VALUES (1000, 'from a newer qchat', 0)`)
	if err := h.st.Close(); err != nil {
		h.Fatal(err)
	}
	h.st = nil
	st, err := h.open()
	if err == nil {
		st.Close()
		h.Fatal("a database at schema version 1000 was opened")
	}
	if !strings.Contains(err.Error(), "newer") {
		h.Errorf("error %q does not say the schema is newer", err)
	}
}

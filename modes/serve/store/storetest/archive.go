package storetest

import (
	"fmt"
	"strings"
	"time"

	"qchat/modes/serve/store"
)

// The history archive: written once per message, read per user and
// conversation in id order, paged both ways, groups only from when the
// user joined, pruned by age.

// archive writes items to the archive and waits for the commit.
func (h *harness) archive(items ...store.Item) {
	h.Helper()
	done := make(chan error, 1)
	h.st.Archive(items, func(err error) { done <- err })
	if err := <-done; err != nil {
		h.Fatalf("Archive: %v", err)
	}
}

// history returns a page as "id:sender>recipient:body" words (group
// messages as "id:sender>#key:body").
func (h *harness) history(q store.HistoryQuery) string {
	h.Helper()
	if q.Limit == 0 {
		q.Limit = 100
	}
	items, err := h.st.History(h.ctx, q)
	if err != nil {
		h.Fatalf("History(%+v): %v", q, err)
	}
	var out []string
	for _, m := range items {
		to := fmt.Sprint(m.Recipient)
		if m.GroupKey != "" {
			to = "#" + m.GroupKey
			if m.Kind != "GMSG" || m.Recipient != 0 {
				h.Errorf("group message %d: kind %s recipient %d", m.ID, m.Kind, m.Recipient)
			}
		} else if m.Kind != "MSG" {
			h.Errorf("private message %d: kind %s", m.ID, m.Kind)
		}
		out = append(out, fmt.Sprintf("%d:%d>%s:%s", m.ID, m.Sender, to, m.Body))
	}
	return strings.Join(out, " ")
}

func pm(id, from, to int64, text string, t time.Time) store.Item {
	return store.Item{Recipient: to, ID: id, Kind: "MSG", Sender: from, Nick: fmt.Sprint("n", from), Time: t, Body: text}
}

func gm(id, from int64, group, text string, t time.Time) store.Item {
	return store.Item{ID: id, Kind: "GMSG", Sender: from, Nick: fmt.Sprint("n", from), Time: t, Body: "#" + group + " " + text,
		GroupKey: store.GroupKey(group)}
}

func testArchive(h *harness) {
	a, b, c := h.user("a"), h.user("b"), h.user("c")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	h.archive(pm(10, a, b, "hi b", t0), pm(11, b, a, "hi a", t0.Add(time.Second)), pm(12, a, c, "hi c", t0.Add(2*time.Second)))
	// Archived twice (a resend after a restart): still one row.
	h.archive(pm(11, b, a, "hi a", t0.Add(time.Second)), pm(13, c, b, "c to b", t0.Add(3*time.Second)))
	if n := h.count(`SELECT COUNT(*) FROM archive`); n != 4 {
		h.Errorf("archive holds %d rows, want 4", n)
	}
	ab := fmt.Sprintf("10:%d>%d:hi b 11:%d>%d:hi a", a, b, b, a)
	if got := h.history(store.HistoryQuery{User: a, Peer: b}); got != ab {
		h.Errorf("a with b: %s, want %s", got, ab)
	}
	if got := h.history(store.HistoryQuery{User: b, Peer: a}); got != ab {
		h.Errorf("b with a: %s, want %s", got, ab)
	}
	if got, want := h.history(store.HistoryQuery{User: a}), ab+fmt.Sprintf(" 12:%d>%d:hi c", a, c); got != want {
		h.Errorf("all of a: %s, want %s", got, want)
	}
	// Nobody reads a conversation they are not in.
	if got := h.history(store.HistoryQuery{User: c, Peer: a}); got != fmt.Sprintf("12:%d>%d:hi c", a, c) {
		h.Errorf("c with a: %s", got)
	}
	h.reopen()
	if got := h.history(store.HistoryQuery{User: b}); got != ab+fmt.Sprintf(" 13:%d>%d:c to b", c, b) {
		h.Errorf("all of b after a reopen: %s", got)
	}
}

func testArchivePages(h *harness) {
	a, b := h.user("a"), h.user("b")
	t0 := time.Now().Add(-time.Hour)
	var items []store.Item
	for i := range int64(10) {
		items = append(items, pm(100+i, a, b, fmt.Sprint("m", i), t0.Add(time.Duration(i)*time.Second)))
	}
	h.archive(items...)
	ids := func(q store.HistoryQuery) string {
		h.Helper()
		var out []string
		for _, w := range strings.Fields(h.history(q)) {
			id, _, _ := strings.Cut(w, ":")
			out = append(out, id)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		q    store.HistoryQuery
		want string
	}{
		{store.HistoryQuery{User: a, Peer: b, Limit: 3}, "107 108 109"},                                     // the last page
		{store.HistoryQuery{User: a, Peer: b, Limit: 3, Before: 107}, "104 105 106"},                        // the page before
		{store.HistoryQuery{User: a, Peer: b, Limit: 3, Before: 102}, "100 101"},                            // the first
		{store.HistoryQuery{User: a, Peer: b, Limit: 3, Forward: true, After: 101}, "102 103 104"},          // forward
		{store.HistoryQuery{User: b, Limit: 4, Forward: true, After: 107}, "108 109"},                       // forward to the end
		{store.HistoryQuery{User: a, Peer: b, Limit: 20, Forward: true, After: 103, Below: 106}, "104 105"}, // below the watermark
		{store.HistoryQuery{User: a, Peer: b, Limit: 2, Below: 106}, "104 105"},
		{store.HistoryQuery{User: a, Peer: b, Limit: 20, Since: t0.Add(7 * time.Second)}, "107 108 109"},
	} {
		if got := ids(c.q); got != c.want {
			h.Errorf("%+v: %s, want %s", c.q, got, c.want)
		}
	}
}

func testArchiveGroups(h *harness) {
	a, b, c := h.user("a"), h.user("b"), h.user("c")
	h.groupOf("G", a, b)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	h.archive(gm(20, a, "G", "before c", t0), pm(21, a, b, "private", t0))
	if n := h.count(`SELECT COUNT(*) FROM archive WHERE id = 20`); n != 1 {
		h.Errorf("a group message is %d rows, want 1", n)
	}
	must(h, "c joins", h.st.AddMember(h.ctx, "G", c, 21))
	h.archive(gm(22, b, "G", "after c", t0.Add(2*time.Second)))
	before, after := fmt.Sprintf("20:%d>#g:#G before c", a), fmt.Sprintf("22:%d>#g:#G after c", b)
	if got := h.history(store.HistoryQuery{User: b, Group: "g"}); got != before+" "+after {
		h.Errorf("b in G: %s", got)
	}
	// c sees the group from when it joined, and nothing private of a and b.
	if got := h.history(store.HistoryQuery{User: c, Group: "g"}); got != after {
		h.Errorf("c in G: %s, want %s", got, after)
	}
	if got := h.history(store.HistoryQuery{User: c}); got != after {
		h.Errorf("all of c: %s, want %s", got, after)
	}
	want := before + fmt.Sprintf(" 21:%d>%d:private ", a, b) + after
	if got := h.history(store.HistoryQuery{User: a}); got != want {
		h.Errorf("all of a: %s, want %s", got, want)
	}
	// A member who left reads the group no more.
	must(h, "b leaves", h.st.RemoveMember(h.ctx, "G", b, 0, false))
	if got := h.history(store.HistoryQuery{User: b, Group: "g"}); got != "" {
		h.Errorf("b after leaving: %s", got)
	}
	if got := h.history(store.HistoryQuery{User: b}); got != fmt.Sprintf("21:%d>%d:private", a, b) {
		h.Errorf("all of b after leaving: %s", got)
	}
}

func testArchivePrune(h *harness) {
	a, b := h.user("a"), h.user("b")
	now := time.Now()
	h.archive(pm(1, a, b, "old", now.Add(-49*time.Hour)), pm(2, b, a, "older", now.Add(-50*time.Hour)), pm(3, a, b, "new", now.Add(-time.Hour)))
	n, err := h.st.PruneArchive(h.ctx, now.Add(-48*time.Hour))
	if err != nil || n != 2 {
		h.Fatalf("PruneArchive: %d, %v; want 2", n, err)
	}
	if got := h.history(store.HistoryQuery{User: a}); got != fmt.Sprintf("3:%d>%d:new", a, b) {
		h.Errorf("after pruning: %s", got)
	}
	if n, err := h.st.PruneArchive(h.ctx, now.Add(-48*time.Hour)); err != nil || n != 0 {
		h.Errorf("PruneArchive again: %d, %v", n, err)
	}
}

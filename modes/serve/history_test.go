package serve

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"qchat/protocol"
)

// historyServer starts a server over data and store ts that keeps
// history for a day, with no message rate limit.
func historyServer(t *testing.T, ts testStore, data string) *Server {
	t.Helper()
	return startTestServer(t, func(c *Config) {
		c.Data, c.Store, c.HistoryDays, c.Limits.MsgRate = data, string(ts), 1, 0
	})
}

// history runs HISTORY args and returns its lines (without their msgid
// and time: "in|out from nick conv text") and its last line's text.
func (c *client) history(args string) (lines []string, ids []int64, last string) {
	c.t.Helper()
	c.tags++
	tag := c.name + fmt.Sprint(c.tags)
	c.send("@" + tag + " HISTORY " + args)
	for {
		l := c.next()
		if l.Tag != tag {
			if !l.IsEvent() {
				c.t.Fatalf("%s: HISTORY %s: got %+v", c.name, args, l)
			}
			continue // what waited for the login, presence
		}
		if l.Code != protocol.CodeList {
			c.t.Fatalf("%s: HISTORY %s: %d %s", c.name, args, l.Code, l.Text)
		}
		if !l.More {
			return lines, ids, l.Text
		}
		f := strings.SplitN(l.Text, " ", 3)
		var id int64
		if _, err := fmt.Sscan(f[0], &id); err != nil || len(f) < 3 {
			c.t.Fatalf("%s: HISTORY line %q", c.name, l.Text)
		}
		if _, err := protocol.ParseTime(f[1]); err != nil {
			c.t.Fatalf("%s: HISTORY line %q: %v", c.name, l.Text, err)
		}
		ids = append(ids, id)
		lines = append(lines, f[2])
	}
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestHistoryOff: a server started without --history-days keeps nothing,
// says nothing of history in its greeting, and refuses HISTORY.
func TestHistoryOff(t *testing.T) {
	srv := startTestServer(t, func(c *Config) { c.Data = t.TempDir() })
	defer srv.Shutdown()
	c := dial(t, srv, "a")
	if ext := srv.extensions(); strings.Contains(ext, "history") {
		t.Fatalf("greeting extensions %q", ext)
	}
	register(c, "alice", "pw")
	c.login("alice", "pw")
	c.want("HISTORY *", protocol.CodeNotYet)
	if n := rowCount(t, srv.store, `SELECT COUNT(*) FROM archive`); n != 0 {
		t.Fatalf("archive holds %d rows", n)
	}
}

// TestHistory: private and group messages are kept once each, and read
// back by each side in order, per conversation or all at once, paged
// both ways; a group only by its members and from when they joined;
// nothing of a conversation one is not in; the same after a restart.
func TestHistory(t *testing.T) { eachStore(t, testHistory) }

func testHistory(t *testing.T, ts testStore) {
	data := t.TempDir()
	srv := historyServer(t, ts, data)
	r := dial(t, srv, "reg")
	alice, bob, carol := register(r, "alice", "pw"), register(r, "bob", "pw"), register(r, "carol", "pw")
	if !strings.Contains(srv.extensions(), "history") {
		t.Fatalf("greeting extensions %q", srv.extensions())
	}
	a, b := online(t, srv, "alice"), online(t, srv, "bob")
	for i := range 3 {
		a.send(fmt.Sprintf("@a%d MSG bob hello %d\x1b[31m", i, i))
		m := b.nextMsg()
		b.send(fmt.Sprint("ACK ", m.id))
		sent(t, a.waitFor("250", func(l protocol.Line) bool { return l.Tag == fmt.Sprint("a", i) }), "delivered", bob)
	}
	a.want("CREATE #g", protocol.CodeOK)
	b.want("JOIN #g", protocol.CodeOK)
	// Alice goes (the grace is an hour: her copy is stored once she has).
	a.conn.Close()
	b.want("MSG #g before carol", protocol.CodeSent)
	b.conn.Close()
	c := online(t, srv, "carol")
	c.want("JOIN #g", protocol.CodeOK)
	c.want("MSG #g carol here", protocol.CodeSent)
	c.want("MSG alice psst", protocol.CodeSent)
	c.conn.Close()
	hello := func(i int) string { return fmt.Sprintf("out %d alice %d hello %d\x1b[31m", alice, bob, i) }
	check := func(srv *Server) {
		t.Helper()
		a, b, c := loginAs(t, srv, "alice"), loginAs(t, srv, "bob"), loginAs(t, srv, "carol")
		defer a.conn.Close()
		defer b.conn.Close()
		defer c.conn.Close()
		got, _, last := a.history("bob")
		wantLines(t, "alice's history with bob", got, hello(0), hello(1), hello(2))
		if last != "3 messages" {
			t.Fatalf("last line %q", last)
		}
		got, _, _ = b.history("1000")
		wantLines(t, "bob's history with alice", got,
			fmt.Sprintf("in %d alice %d hello 0\x1b[31m", alice, alice), fmt.Sprintf("in %d alice %d hello 1\x1b[31m", alice, alice),
			fmt.Sprintf("in %d alice %d hello 2\x1b[31m", alice, alice))
		beforeCarol := fmt.Sprintf("in %d bob #g before carol", bob)
		carolHere := fmt.Sprintf("in %d carol #g carol here", carol)
		psst := fmt.Sprintf("in %d carol %d psst", carol, carol)
		got, _, _ = a.history("*")
		wantLines(t, "all of alice's", got, hello(0), hello(1), hello(2), beforeCarol, carolHere, psst)
		// carol: the group from when she joined, and her own; nothing of alice and bob.
		got, _, _ = c.history("*")
		wantLines(t, "all of carol's", got, fmt.Sprintf("out %d carol #g carol here", carol), fmt.Sprintf("out %d carol %d psst", carol, alice))
		got, _, _ = c.history("bob")
		wantLines(t, "carol with bob", got)
		got, _, _ = c.history("#G")
		wantLines(t, "carol in #g", got, fmt.Sprintf("out %d carol #g carol here", carol))
	}
	check(srv)
	srv.Shutdown()
	srv = historyServer(t, ts, data) // what a restart keeps
	defer srv.Shutdown()
	check(srv)

	c = loginAs(t, srv, "carol")
	c.want("LEAVE #g", protocol.CodeOK)
	c.want("HISTORY #g", protocol.CodeForbidden)
	c.want("JOIN #g", protocol.CodeOK) // back in: from now on
	got, _, _ := c.history("#g")
	wantLines(t, "carol in #g again", got)
	c.want("HISTORY nobody", protocol.CodeNoSuchUser)
	c.want("HISTORY #nogroup", protocol.CodeNoSuchGroup)
	c.want("HISTORY bob after x", protocol.CodeSyntax)
	c.want("HISTORY bob 0", protocol.CodeSyntax)
	c.want("HISTORY bob around 7", protocol.CodeSyntax)
}

// loginAs logs nick in on a new connection; what waited for it may come.
func loginAs(t *testing.T, srv *Server, nick string) *client {
	t.Helper()
	c := dial(t, srv, nick)
	c.login(nick, "pw")
	return c
}

// TestHistoryPages: a long conversation comes in pages of the size asked
// (at most historyMaxLines), forward from an id or backward from one,
// each saying whether more lie beyond it, and together all of it once.
func TestHistoryPages(t *testing.T) {
	srv := historyServer(t, "", t.TempDir())
	defer srv.Shutdown()
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	register(r, "bob", "pw")
	a := online(t, srv, "alice")
	const n = 250
	for i := range n {
		a.send(fmt.Sprintf("@m%d MSG bob m%d", i, i))
	}
	for range n {
		a.waitFor("250", func(l protocol.Line) bool { return l.Code == protocol.CodeSent })
	}
	var all []int64
	after := "0"
	for pages := 0; ; pages++ {
		got, ids, last := a.history("bob after " + after + " 100")
		if pages > 3 || len(got) == 0 {
			t.Fatalf("page %d after %s: %d lines, %q", pages, after, len(got), last)
		}
		all = append(all, ids...)
		after = fmt.Sprint(ids[len(ids)-1])
		if last == fmt.Sprintf("%d messages", len(got)) {
			break
		}
		if last != "100 messages more" {
			t.Fatalf("page %d: last line %q", pages, last)
		}
	}
	if len(all) != n {
		t.Fatalf("forward pages gave %d messages, want %d", len(all), n)
	}
	for i := 1; i < n; i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("forward pages out of order at %d: %d after %d", i, all[i], all[i-1])
		}
	}
	// Backward from the end, and a limit above the cap is the cap.
	got, ids, last := a.history("bob 1000")
	if len(got) != historyMaxLines || last != fmt.Sprintf("%d messages more", historyMaxLines) || ids[len(ids)-1] != all[n-1] {
		t.Fatalf("last page: %d lines, %q, ending at %d (want %d)", len(got), last, ids[len(ids)-1], all[n-1])
	}
	got, ids, last = a.history(fmt.Sprintf("bob before %d", ids[0]))
	if len(got) != n-historyMaxLines || last != fmt.Sprintf("%d messages", n-historyMaxLines) || ids[0] != all[0] {
		t.Fatalf("page before: %d lines, %q", len(got), last)
	}
	if got[0] != "out 1000 alice 1001 m0" {
		t.Fatalf("first message %q", got[0])
	}
}

// TestHistoryPrune: what is older than --history-days is not answered,
// and goes from the store at the next prune.
func TestHistoryPrune(t *testing.T) {
	srv := historyServer(t, "", t.TempDir())
	defer srv.Shutdown()
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	register(r, "bob", "pw")
	a := online(t, srv, "alice")
	a.want("MSG bob old news", protocol.CodeSent)
	arch := srv.po.arch
	arch.mu.Lock()
	arch.now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	arch.mu.Unlock()
	if got, _, _ := a.history("bob"); len(got) != 0 {
		t.Fatalf("a message older than a day is answered: %q", got)
	}
	if n := rowCount(t, srv.store, `SELECT COUNT(*) FROM archive`); n != 1 {
		t.Fatalf("archive holds %d rows before the prune, want 1", n)
	}
	arch.prune()
	if n := rowCount(t, srv.store, `SELECT COUNT(*) FROM archive`); n != 0 {
		t.Fatalf("archive holds %d rows after the prune, want 0", n)
	}
}

// TestArchiveWatermark: HISTORY answers below the lowest id given out
// and not yet archived, whatever order ids are archived or skipped in.
func TestArchiveWatermark(t *testing.T) {
	srv := historyServer(t, "", t.TempDir())
	defer srv.Shutdown()
	arch := srv.po.arch
	var ids []int64
	for range 4 {
		id, ok := arch.takeID(srv.po.ids)
		if !ok {
			t.Fatal("no id")
		}
		ids = append(ids, id)
	}
	if w := arch.watermark(); w != ids[0] {
		t.Fatalf("watermark %d, want %d", w, ids[0])
	}
	arch.mu.Lock()
	arch.doneLocked(ids[1]) // archived before the one below it
	arch.mu.Unlock()
	if w := arch.watermark(); w != ids[0] {
		t.Fatalf("watermark %d after a later id was archived, want %d", w, ids[0])
	}
	arch.skip(ids[0])
	if w := arch.watermark(); w != ids[2] {
		t.Fatalf("watermark %d, want %d", w, ids[2])
	}
	arch.skip(ids[3])
	arch.skip(ids[2])
	if w := arch.watermark(); w != 0 {
		t.Fatalf("watermark %d with nothing pending", w)
	}
}

// BenchmarkRouteHistory is BenchmarkRoute on a server that keeps history
// (--history-days): the same message, handed to the archiver too, with
// the sender's answer held until the archive's commit (the store's writer
// commits in the background, SQLite synchronous=normal).
func BenchmarkRouteHistory(b *testing.B) {
	ctx := context.Background()
	po, cfg := benchPostOffice(b, "normal")
	po.arch = newArchiver(po, 24*time.Hour)
	srv := &Server{cfg: cfg}
	alice, bob := benchSession(srv, 1000, "alice"), benchSession(srv, 1001, "bob")
	po.attach(ctx, alice)
	po.attach(ctx, bob)
	text := strings.Repeat("x", 64)
	mb := po.box(bob.user)
	alice.takeArena()
	defer alice.releaseArena()
	b.ReportAllocs()
	ack := make([]int64, 1)
	for b.Loop() {
		if err := po.post(alice, "t1", bob.user, text); err != nil {
			b.Fatal(err)
		}
		mb.mu.Lock()
		ack[0] = mb.queue[len(mb.queue)-1].id
		mb.mu.Unlock()
		po.ack(bob.user, ack)
	}
}

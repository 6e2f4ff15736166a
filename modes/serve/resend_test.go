package serve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"qchat/modes/serve/dedupe"
	"qchat/modes/serve/store"
	"qchat/protocol"
)

// gmsgID reads a GMSG event's msgid.
func (c *client) nextGMSG() (int64, string) {
	c.t.Helper()
	l := c.waitFor("a GMSG event", func(l protocol.Line) bool { return l.Kind == "GMSG" })
	id, _ := strconv.ParseInt(l.Args[0], 10, 64)
	return id, l.Args[5]
}

// TestResendTakesTheAnswerOver: a message whose sender lost its connection
// before the answer is sent again (resend=); the server neither takes it
// twice nor loses the answer: the new connection hears it.
func TestResendTakesTheAnswerOver(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	bob := register(a, "bob", "pw")
	a.login("alice", "pw")
	b := dial(t, srv, "b")
	b.login("bob", "pw")
	b.quiet()

	// Waiting for bob's ACK when alice's connection dies.
	a.send("@m1 MSG id=k1 bob one")
	m := b.nextMsg()
	a.conn.Close()
	a = dial(t, srv, "a2")
	a.login("alice", "pw")
	a.send("@r1 MSG resend=k1 bob one")
	a.quiet() // no answer before the ACK
	b.send(fmt.Sprint("ACK ", m.id))
	l := a.waitFor("the 250 for r1", func(l protocol.Line) bool { return l.Tag == "r1" })
	if id := sent(t, l, "delivered", bob); id != m.id {
		t.Fatalf("resend answered with id %d, bob got %d", id, m.id)
	}
	b.quiet() // one copy only

	// Answered already (the answer was lost with a connection): the same
	// answer again at once, and nothing for bob.
	if id := sent(t, a.do("MSG resend=k1 bob one"), "delivered", bob); id != m.id {
		t.Fatalf("second resend answered with id %d, want %d", id, m.id)
	}
	b.quiet()

	// The client id names another message: refused, nothing sent.
	a.want("MSG resend=k1 alice one", protocol.CodeSyntax)
	// A resend the server never saw is a new message.
	a.send("@n1 MSG resend=k9 bob new")
	m2 := b.nextMsg()
	if m2.text != "new" || m2.id <= m.id {
		t.Fatalf("bob got %+v for an unknown resend", m2)
	}
	b.send(fmt.Sprint("ACK ", m2.id))
	sent(t, a.waitFor("the 250 for n1", func(l protocol.Line) bool { return l.Tag == "n1" }), "delivered", bob)
}

// TestResendAfterRestart: a stored message is recognised by its client id
// after a restart, whether it still waits for its recipient or the
// recipient took it meanwhile.
func TestResendAfterRestart(t *testing.T) { eachStore(t, testResendAfterRestart) }

func testResendAfterRestart(t *testing.T, ts testStore) {
	data := t.TempDir()
	srv := ts.server(t, data)
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	carol := register(a, "carol", "pw")
	a.login("alice", "pw")
	stored := sent(t, a.do("MSG id=k3 carol for later"), "stored", carol)
	srv.Shutdown()

	srv = ts.server(t, data)
	a = dial(t, srv, "a2")
	a.login("alice", "pw")
	if id := sent(t, a.do("MSG resend=k3 carol for later"), "stored", carol); id != stored {
		t.Fatalf("resend after restart answered %d, want %d", id, stored)
	}
	c := dial(t, srv, "c")
	c.login("carol", "pw")
	if m := c.nextMsg(); m.id != stored {
		t.Fatalf("carol got %+v, want message %d", m, stored)
	}
	c.send(fmt.Sprint("ACK ", stored))
	c.quiet()
	c.want("QUIT", protocol.CodeBye)
	srv.Shutdown() // the deletion, and the id kept instead, are committed

	srv = ts.server(t, data)
	defer srv.Shutdown()
	a = dial(t, srv, "a3")
	a.login("alice", "pw")
	if id := sent(t, a.do("MSG resend=k3 carol for later"), "delivered", carol); id != stored {
		t.Fatalf("resend after the ACK answered %d, want %d", id, stored)
	}
	c = dial(t, srv, "c2")
	c.login("carol", "pw")
	c.quiet() // nothing again
}

// TestResendGroupAfterRestart: a group message found by its client id
// after a restart goes again, under its own id, to the members that hold
// no stored copy (here bob, whose copy lived only in memory when the
// server went down), and not to the others.
func TestResendGroupAfterRestart(t *testing.T) { eachStore(t, testResendGroupAfterRestart) }

func testResendGroupAfterRestart(t *testing.T, ts testStore) {
	data := t.TempDir()
	srv := ts.server(t, data)
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	bob := register(a, "bob", "pw")
	carol := register(a, "carol", "pw")
	a.login("alice", "pw")
	a.want("CREATE #g", protocol.CodeOK)
	for _, who := range []string{"bob", "carol"} {
		x := dial(t, srv, who)
		x.login(who, "pw")
		x.want("JOIN #g", protocol.CodeOK)
		x.want("QUIT", protocol.CodeBye)
	}
	l := a.do("MSG id=g1 #g hello all")
	if l.Code != protocol.CodeSent || !strings.Contains(l.Text, " stored #g ") {
		t.Fatalf("group post: %d %s", l.Code, l.Text)
	}
	gid, _ := strconv.ParseInt(strings.Fields(l.Text)[0], 10, 64)
	srv.Shutdown()
	// bob's copy did not survive (as if it had been in memory only): his
	// cursor is past the stored message.
	st := ts.open(t, data)
	if err := st.ExecSQL(context.Background(), `UPDATE members SET acked = $1 WHERE "user" = $2`, gid, bob); err != nil {
		t.Fatal(err)
	}
	st.Close()

	srv = ts.server(t, data)
	defer srv.Shutdown()
	b := dial(t, srv, "b")
	b.login("bob", "pw")
	b.quiet()
	a = dial(t, srv, "a2")
	a.login("alice", "pw")
	a.send("@r1 MSG resend=g1 #g hello all")
	if id, text := b.nextGMSG(); id != gid || text != "hello all" {
		t.Fatalf("bob got %d %q, want %d", id, text, gid)
	}
	b.send(fmt.Sprint("ACK ", gid))
	l = a.waitFor("the 250 for r1", func(l protocol.Line) bool { return l.Tag == "r1" })
	if want := fmt.Sprintf("%d stored #g ", gid); l.Code != protocol.CodeSent || !strings.HasPrefix(l.Text, want) {
		t.Fatalf("resend answered %d %q, want 250 %s...", l.Code, l.Text, want)
	}
	c := dial(t, srv, "c")
	c.login("carol", "pw")
	if id, _ := c.nextGMSG(); id != gid {
		t.Fatalf("carol got %d, want %d", id, gid)
	}
	c.send(fmt.Sprint("ACK ", gid))
	c.quiet() // her stored copy, once
	_ = carol
	f, err := srv.store.FindSent(context.Background(), store.FirstUserID, "g1")
	if err != nil || f.ID != gid {
		t.Fatalf("FindSent = %+v, %v", f, err)
	}
}

// TestResendAfterCrashInMemory: a message that lived only in memory when
// the server went down (here: its stored row taken away, as if it never
// had one) is known from the journal after the restart; its resend goes
// again under its own msgid, so that a recipient who had it drops it.
func TestResendAfterCrashInMemory(t *testing.T) { eachStore(t, testResendAfterCrashInMemory) }

func testResendAfterCrashInMemory(t *testing.T, ts testStore) {
	data := t.TempDir()
	srv := ts.server(t, data)
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	bob := register(a, "bob", "pw")
	a.login("alice", "pw")
	b := dial(t, srv, "b")
	b.login("bob", "pw")
	b.quiet()
	a.send("@m1 MSG id=j1 bob only in memory")
	first := b.nextMsg()
	srv.Shutdown()
	st := ts.open(t, data)
	if err := st.ExecSQL(context.Background(), `DELETE FROM inbox WHERE recipient = $1`, bob); err != nil {
		t.Fatal(err)
	}
	st.Close()

	srv = ts.server(t, data)
	defer srv.Shutdown()
	b = dial(t, srv, "b2")
	b.login("bob", "pw")
	b.quiet()
	a = dial(t, srv, "a2")
	a.login("alice", "pw")
	a.send("@r1 MSG resend=j1 bob only in memory")
	if m := b.nextMsg(); m.id != first.id || m.text != "only in memory" {
		t.Fatalf("bob got %+v again, want message %d under its own id", m, first.id)
	}
	b.send(fmt.Sprint("ACK ", first.id))
	l := a.waitFor("the 250 for r1", func(l protocol.Line) bool { return l.Tag == "r1" })
	if id := sent(t, l, "delivered", bob); id != first.id {
		t.Fatalf("resend answered %d, want %d", id, first.id)
	}
	// Once more: now answered from memory, nothing for bob.
	if id := sent(t, a.do("MSG resend=j1 bob only in memory"), "delivered", bob); id != first.id {
		t.Fatalf("second resend answered %d", id)
	}
	b.quiet()
	// A message sent after the restart takes a new, higher id.
	a.send("@n1 MSG id=j2 bob next")
	if m := b.nextMsg(); m.id <= first.id {
		t.Fatalf("next message id %d, not above %d", m.id, first.id)
	}
}

// TestJournalBeforeAnyoneSees: the client id of a message is in the
// journal (its ring file) before the recipient can see the message, for
// each of a burst of messages pipelined in one write.
func TestJournalBeforeAnyoneSees(t *testing.T) {
	data := t.TempDir()
	srv := testServer(t, data)
	defer srv.Shutdown()
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	register(a, "bob", "pw")
	a.login("alice", "pw")
	b := dial(t, srv, "b")
	b.login("bob", "pw")
	b.quiet()
	var burst strings.Builder
	for i := range 20 {
		fmt.Fprintf(&burst, "@m%d MSG id=burst.%d bob message %d\n", i, i, i)
	}
	a.conn.Write([]byte(burst.String()))
	for i := range 20 {
		m := b.nextMsg()
		// What a server started after a SIGKILL now would read.
		ring, err := os.ReadFile(filepath.Join(data, "sent.ring"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "sent.ring"), ring, 0o600)
		j, entries, err := dedupe.OpenJournal(dir, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		if !slices.ContainsFunc(entries, func(e dedupe.Entry) bool { return e.CID == fmt.Sprintf("burst.%d", i) && e.ID == m.id }) {
			t.Fatalf("bob sees message %d (%q) before its client id is in the journal", m.id, m.text)
		}
	}
}

package serve

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"qchat/protocol"
)

// TestGroupMessageStoredOnce: a group message for members who are all
// offline is one row, not one per member; each member gets it at login,
// once; when the last one has acknowledged it and logged out, the row is
// gone and its client id kept.
func TestGroupMessageStoredOnce(t *testing.T) { eachStore(t, testGroupMessageStoredOnce) }

func testGroupMessageStoredOnce(t *testing.T, ts testStore) {
	data := t.TempDir()
	srv := ts.server(t, data)
	defer srv.Shutdown()
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	members := []string{"m1", "m2", "m3"}
	for _, m := range members {
		register(a, m, "pw")
	}
	a.login("alice", "pw")
	a.want("CREATE #g", protocol.CodeOK)
	for _, m := range members {
		x := dial(t, srv, m)
		x.login(m, "pw")
		x.want("JOIN #g", protocol.CodeOK)
		x.want("QUIT", protocol.CodeBye)
	}
	l := a.do("MSG id=c1 #g hello all")
	if l.Code != protocol.CodeSent || !strings.Contains(l.Text, " stored #g ") {
		t.Fatalf("group post: %d %s", l.Code, l.Text)
	}
	gid, _ := strconv.ParseInt(strings.Fields(l.Text)[0], 10, 64)
	if n := rowCount(t, srv.store, `SELECT COUNT(*) FROM group_msgs`); n != 1 {
		t.Errorf("group_msgs holds %d rows for one message to 3 offline members, want 1", n)
	}
	if n := rowCount(t, srv.store, `SELECT COUNT(*) FROM inbox`); n != 0 {
		t.Errorf("inbox holds %d rows, want none (the group row serves every member)", n)
	}
	for i, m := range members {
		x := dial(t, srv, m)
		x.login(m, "pw")
		if id, text := x.nextGMSG(); id != gid || text != "hello all" {
			t.Fatalf("%s got %d %q, want %d", m, id, text, gid)
		}
		x.send(fmt.Sprint("ACK ", gid))
		x.quiet()
		x.want("QUIT", protocol.CodeBye)
		// Logged in again, it is not sent twice.
		x = dial(t, srv, m+"again")
		x.login(m, "pw")
		x.quiet()
		x.want("QUIT", protocol.CodeBye)
		left := rowCount(t, srv.store, `SELECT COUNT(*) FROM group_msgs`)
		if i < len(members)-1 && left != 1 {
			t.Fatalf("after %d of 3 members took it, %d rows; want 1", i+1, left)
		}
	}
	waitUntil(t, "the row to go once every member had it", func() bool {
		return rowCount(t, srv.store, `SELECT COUNT(*) FROM group_msgs`) == 0
	})
	if n := rowCount(t, srv.store, `SELECT COUNT(*) FROM sent_ids WHERE cid = 'c1' AND msgid = $1`, gid); n != 1 {
		t.Errorf("the client id of the deleted row was not kept (%d rows in sent_ids)", n)
	}
}

// TestGroupCursorSkipsOwnAndEarlier: a member does not get its own stored
// messages, nor those stored before it joined.
func TestGroupCursorSkipsOwnAndEarlier(t *testing.T) { eachStore(t, testGroupCursorSkipsOwnAndEarlier) }

func testGroupCursorSkipsOwnAndEarlier(t *testing.T, ts testStore) {
	srv := ts.server(t, t.TempDir())
	defer srv.Shutdown()
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	register(a, "bob", "pw")
	register(a, "carol", "pw")
	a.login("alice", "pw")
	a.want("CREATE #g", protocol.CodeOK)
	b := dial(t, srv, "b")
	b.login("bob", "pw")
	b.want("JOIN #g", protocol.CodeOK)
	b.want("QUIT", protocol.CodeBye)
	before := a.do("MSG #g before carol") // stored for bob
	if before.Code != protocol.CodeSent {
		t.Fatalf("post: %d %s", before.Code, before.Text)
	}
	c := dial(t, srv, "c")
	c.login("carol", "pw")
	c.want("JOIN #g", protocol.CodeOK)
	c.want("QUIT", protocol.CodeBye)
	after := a.do("MSG #g after carol")
	afterID, _ := strconv.ParseInt(strings.Fields(after.Text)[0], 10, 64)
	a.want("QUIT", protocol.CodeBye)

	c = dial(t, srv, "c2")
	c.login("carol", "pw")
	if id, text := c.nextGMSG(); id != afterID || text != "after carol" {
		t.Fatalf("carol got %d %q first, want %d (nothing from before she joined)", id, text, afterID)
	}
	c.send(fmt.Sprint("ACK ", afterID))
	c.quiet()
	a = dial(t, srv, "a2")
	a.login("alice", "pw")
	a.quiet() // her own messages are not sent back to her
}

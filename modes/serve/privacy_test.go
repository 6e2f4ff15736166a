package serve

import (
	"strconv"
	"strings"
	"testing"

	"qchat/protocol"
)

// msgTo sends MSG to user with a tag and returns the reply once it comes
// (events before it are skipped).
func (c *client) msgTo(user, text string) protocol.Line {
	c.t.Helper()
	c.tags++
	tag := "m" + strconv.Itoa(c.tags)
	c.send("@" + tag + " MSG " + user + " " + text)
	return c.waitFor("the answer to MSG", func(l protocol.Line) bool { return l.Tag == tag })
}

// TestFriendsModeMsgDoesNotTellOnline: in friends mode a message to a user
// who is not the sender's friend is answered as one to a user who is
// offline ("stored", no receipt on it, no RECEIPT after), so that MSG
// does not tell a non-friend what LIST and INFO hide from it. A friend
// hears "delivered" and its receipts.
func TestFriendsModeMsgDoesNotTellOnline(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Presence = "friends"; c.Limits.MsgRate = 0 })
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	bobID := register(r, "bob", "pw")
	register(r, "carol", "pw")
	daveID := register(r, "dave", "pw") // never online
	a := loginAs(t, srv, "alice")
	b := loginAs(t, srv, "bob")
	a.want("ADD bob", protocol.CodeOK)
	b.want("ACCEPT friend alice", protocol.CodeOK)
	c := loginAs(t, srv, "carol")

	// bob shows (ACK) and reads (READ) whatever comes to him.
	readOne := func(from string) {
		t.Helper()
		m := b.nextMsg()
		id := strconv.FormatInt(m.id, 10)
		b.send("READ " + from + " " + id + "\nACK " + id)
	}
	// A friend: delivered, with a receipt.
	b.quiet()
	a.send("@f1 MSG bob hi friend")
	readOne("alice")
	l := a.waitFor("the answer to MSG", func(l protocol.Line) bool { return l.Tag == "f1" })
	sent(t, l, "delivered", bobID)
	if f := strings.Fields(l.Text); len(f) != 5 || f[4] != "read" {
		t.Fatalf("alice's answer %q, want it delivered and read", l.Text)
	}

	// Not a friend: bob online and reading looks like dave, offline.
	c.send("@c1 MSG bob hi stranger")
	readOne("carol")
	l = c.waitFor("the answer to MSG", func(l protocol.Line) bool { return l.Tag == "c1" })
	sent(t, l, "stored", bobID)
	if f := strings.Fields(l.Text); len(f) != 4 {
		t.Fatalf("carol's answer %q carries more than a stored one", l.Text)
	}
	sent(t, c.msgTo("dave", "hi nobody"), "stored", daveID)
	// A later READ of carol's message sends her no RECEIPT either.
	b.want("PING x", protocol.CodeOK)
	c.quiet()

	// LIST agrees: carol sees only herself.
	c.send("@l LIST")
	for {
		l := c.next()
		if l.Tag != "l" {
			continue
		}
		if l.More {
			if !strings.HasPrefix(l.Text, strconv.FormatInt(srv.dir.lookup("carol").id, 10)+" ") {
				t.Fatalf("carol's LIST shows %q", l.Text)
			}
			continue
		}
		break
	}
}

package serve

import (
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestBlockedSeesBlockerOffline: a user that another blocks sees the
// blocker offline everywhere: told so at the BLOCK, no presence events of
// it, absent from LIST, offline in INFO, NUDGE 453, and its messages'
// answers say "stored"; UNBLOCK shows it again.
func TestBlockedSeesBlockerOffline(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Limits.PresenceInterval = 5 * time.Millisecond; c.Limits.MsgRate = 0 })
	r := dial(t, srv, "reg")
	aliceID := register(r, "alice", "pw")
	register(r, "bob", "pw")
	carolID := register(r, "carol", "pw")
	alice := strconv.FormatInt(aliceID, 10)
	a := loginAs(t, srv, "alice")
	b := loginAs(t, srv, "bob")
	c := loginAs(t, srv, "carol")
	isPresence := func(l protocol.Line, user, state string) bool {
		return l.Kind == "PRESENCE" && l.Args[0] == user && l.Args[2] == state
	}

	a.want("BLOCK bob", protocol.CodeOK)
	b.waitFor("alice offline at the block", func(l protocol.Line) bool { return isPresence(l, alice, "offline") })
	a.want("AWAY lunch", protocol.CodeOK)
	c.waitFor("alice away, for carol", func(l protocol.Line) bool { return isPresence(l, alice, "away") })
	c.want("AWAY too", protocol.CodeOK)
	// bob hears carol's change, and nothing of alice's before it.
	b.waitFor("carol away", func(l protocol.Line) bool {
		if l.Kind == "PRESENCE" && l.Args[0] == alice {
			t.Fatalf("bob heard of alice: %+v", l)
		}
		if l.Kind == "PRESENCES" {
			t.Fatalf("bob got a summary: %+v", l)
		}
		return isPresence(l, strconv.FormatInt(carolID, 10), "away")
	})

	b.send("@l LIST")
	for {
		l := b.next()
		if l.Tag != "l" {
			continue
		}
		if strings.HasPrefix(l.Text, alice+" ") {
			t.Fatalf("bob's LIST shows alice: %q", l.Text)
		}
		if !l.More {
			break
		}
	}
	b.send("@i INFO alice")
	for {
		l := b.next()
		if l.Tag != "i" {
			continue
		}
		if strings.HasPrefix(l.Text, "state ") && l.Text != "state offline" || strings.HasPrefix(l.Text, "away") {
			t.Fatalf("bob's INFO alice says %q", l.Text)
		}
		if !l.More {
			break
		}
	}
	b.want("NUDGE alice", protocol.CodeOffline)
	// bob's message to alice is dropped, and answered as if stored.
	sent(t, b.msgTo("alice", "hello?"), "stored", aliceID)

	a.want("UNBLOCK bob", protocol.CodeOK)
	b.waitFor("alice away again at the unblock", func(l protocol.Line) bool { return isPresence(l, alice, "away") })
	b.want("NUDGE alice", protocol.CodeOK)
}

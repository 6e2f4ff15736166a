package serve

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"qchat/protocol"
)

// receiptServer is a test server with three users, alice (1000), bob
// (1001) and carol (1002), a receipt interval of every, and no message
// rate limit (a test sends a thousand at once).
func receiptServer(t *testing.T, every time.Duration) *Server {
	t.Helper()
	srv := startTestServer(t, func(c *Config) { c.Data, c.ReceiptEvery, c.Limits.MsgRate = t.TempDir(), every, 0 })
	t.Cleanup(srv.Shutdown)
	r := dial(t, srv, "reg")
	for _, n := range []string{"alice", "bob", "carol"} {
		register(r, n, "pw")
	}
	return srv
}

// online logs nick in on a new connection and waits until it is online
// for everyone.
func online(t *testing.T, srv *Server, nick string) *client {
	t.Helper()
	c := dial(t, srv, nick)
	c.login(nick, "pw")
	c.quiet()
	return c
}

// mark is the receipt word a 250 carries ("" for none).
func mark(l protocol.Line) string {
	if f := strings.Fields(l.Text); l.Code == protocol.CodeSent && len(f) > 4 {
		return f[4]
	}
	return ""
}

// nextEvent reads until an event of kind and returns it (presence is
// skipped; anything else fails).
func (c *client) nextEvent(kind string) protocol.Line {
	c.t.Helper()
	for {
		l := c.next()
		if l.Kind == kind {
			return l
		}
		if l.Kind != "PRESENCE" {
			c.t.Fatalf("%s: waiting for %s, got %+v", c.name, kind, l)
		}
	}
}

// wantReceipt reads the next RECEIPT and checks it.
func (c *client) wantReceipt(reader int64, nick, kind string, id int64) {
	c.t.Helper()
	l := c.nextEvent("RECEIPT")
	want := []string{strconv.FormatInt(reader, 10), nick, kind, strconv.FormatInt(id, 10)}
	if strings.Join(l.Args, " ") != strings.Join(want, " ") {
		c.t.Fatalf("%s: RECEIPT %q, want %q", c.name, l.Args, want)
	}
}

// TestReceiptRidesOnDelivered: an online reader's ACK is the shown mark,
// and a READ sent before the ACK the read mark; both ride on the sender's
// 250, and nothing else is sent.
func TestReceiptRidesOnDelivered(t *testing.T) {
	srv := receiptServer(t, time.Second)
	a, b := online(t, srv, "alice"), online(t, srv, "bob")

	a.send("@m1 MSG bob shown only")
	m := b.nextMsg()
	b.send(fmt.Sprint("ACK ", m.id))
	l := a.waitFor("the 250 of m1", func(l protocol.Line) bool { return l.Tag == "m1" })
	if sent(t, l, "delivered", 1001); mark(l) != "shown" {
		t.Fatalf("250 %q: want the mark shown", l.Text)
	}

	a.send("@m2 MSG bob read at once")
	m = b.nextMsg()
	b.pipeline([]string{fmt.Sprint("READ alice ", m.id), fmt.Sprint("ACK ", m.id)})
	l = a.waitFor("the 250 of m2", func(l protocol.Line) bool { return l.Tag == "m2" })
	if sent(t, l, "delivered", 1001); mark(l) != "read" {
		t.Fatalf("250 %q: want the mark read", l.Text)
	}
	a.quiet() // no RECEIPT besides
	b.quiet() // READ and ACK have no reply
}

// TestReceiptAfterStored: a message answered "stored" (bob was offline)
// gets its marks as RECEIPT events: shown when bob's client acknowledges
// it at login, read when bob reads it.
func TestReceiptAfterStored(t *testing.T) {
	srv := receiptServer(t, time.Second)
	a := online(t, srv, "alice")
	l := a.do("MSG bob while you were out")
	id := sent(t, l, "stored", 1001)
	if mark(l) != "" {
		t.Fatalf("a stored message's 250 has a mark: %q", l.Text)
	}
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	m := b.nextMsg()
	b.send(fmt.Sprint("ACK ", m.id))
	a.wantReceipt(1001, "bob", "shown", id)
	b.send(fmt.Sprint("READ 1000 ", id)) // by id as well as by name
	a.wantReceipt(1001, "bob", "read", id)
	a.quiet()
}

// TestReceiptsBatched: a thousand stored messages acknowledged at once
// cost their sender two RECEIPTs: the first at once, the rest merged into
// one for the highest id when the interval is over. Reading them all is
// one READ and one RECEIPT.
func TestReceiptsBatched(t *testing.T) {
	srv := receiptServer(t, 200*time.Millisecond)
	a := online(t, srv, "alice")
	const n = 1000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("@s%d MSG bob message %d", i, i)
	}
	a.pipeline(lines)
	var ids []string
	for len(ids) < n {
		l := a.next()
		if l.Code == protocol.CodeSent {
			ids = append(ids, strings.Fields(l.Text)[0])
		} else if l.Kind != "PRESENCE" {
			t.Fatalf("alice got %+v", l)
		}
	}
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	var got []string
	for len(got) < n {
		got = append(got, strconv.FormatInt(b.nextMsg().id, 10))
	}
	b.send("ACK " + strings.Join(got, ","))
	first, last := ids[0], got[n-1]
	a.wantReceipt(1001, "bob", "shown", mustID(t, first))
	a.wantReceipt(1001, "bob", "shown", mustID(t, last))
	b.send("READ alice " + last)
	a.wantReceipt(1001, "bob", "read", mustID(t, last))
	a.quiet()
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, ok := protocol.ParseID(s)
	if !ok {
		t.Fatalf("bad id %q", s)
	}
	return id
}

// TestReceiptsOff: a user with receipts off sends none and sees none,
// whichever side turned them off; INFO shows the setting to its user
// alone, and it holds across a new login.
func TestReceiptsOff(t *testing.T) {
	srv := receiptServer(t, time.Second)
	for _, who := range []string{"bob", "alice"} {
		t.Run(who+" off", func(t *testing.T) {
			a, b := online(t, srv, "alice"), online(t, srv, "bob")
			off := map[string]*client{"alice": a, "bob": b}[who]
			if l := off.want("SET receipts off", protocol.CodeOK); l.Text != "receipts off" {
				t.Fatalf("SET receipts off: %q", l.Text)
			}
			a.send("@m1 MSG bob no marks")
			m := b.nextMsg()
			b.pipeline([]string{fmt.Sprint("READ alice ", m.id), fmt.Sprint("ACK ", m.id)})
			l := a.waitFor("the 250", func(l protocol.Line) bool { return l.Tag == "m1" })
			if sent(t, l, "delivered", 1001); mark(l) != "" {
				t.Fatalf("250 %q with receipts off on %s's side", l.Text, who)
			}
			b.send(fmt.Sprint("READ alice ", m.id))
			a.quiet()

			// The setting is the user's own, kept by the server.
			again := online(t, srv, who)
			if info, _ := again.collect("INFO " + who); !slices.Contains(info, "receipts off") || !slices.Contains(info, "typing on") {
				t.Fatalf("INFO %s to itself: %s", who, info)
			}
			other := online(t, srv, "carol")
			if info, _ := other.collect("INFO " + who); strings.Contains(strings.Join(info, ";"), "receipts") {
				t.Fatalf("INFO %s to carol shows the setting: %s", who, info)
			}
			again.want("SET receipts ON", protocol.CodeOK)
		})
	}
}

// collect sends a tagged command and returns every line of its reply,
// and the events that came before it.
func (c *client) collect(cmd string) (reply []string, before []protocol.Line) {
	c.t.Helper()
	c.tags++
	tag := c.name + strconv.Itoa(c.tags)
	c.send("@" + tag + " " + cmd)
	for {
		l := c.next()
		if l.Tag != tag {
			before = append(before, l)
			continue
		}
		reply = append(reply, l.Text)
		if !l.More {
			return reply, before
		}
	}
}

// TestReceiptWaitsForLogin: marks for a sender who is offline are kept
// for its next login.
func TestReceiptWaitsForLogin(t *testing.T) {
	srv := receiptServer(t, time.Second)
	a := online(t, srv, "alice")
	id := sent(t, a.do("MSG bob read it tomorrow"), "stored", 1001)
	a.want("QUIT", protocol.CodeBye)
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	b.nextMsg()
	b.send(fmt.Sprint("ACK ", id))
	b.send(fmt.Sprint("READ alice ", id))
	b.quiet()
	a = dial(t, srv, "alice")
	a.login("alice", "pw")
	a.wantReceipt(1001, "bob", "shown", id)
	a.wantReceipt(1001, "bob", "read", id)
	a.quiet()
}

// TestTypingRelayedNotKept: TYPING reaches an online peer at once when
// both have typing on, nothing is kept for an offline one, and either
// side's "off" stops it both ways. Groups and oneself are refused.
func TestTypingRelayedNotKept(t *testing.T) {
	srv := receiptServer(t, time.Second)
	a := online(t, srv, "alice")
	a.send("TYPING bob on") // bob is offline: dropped
	a.quiet()
	b := online(t, srv, "bob") // gets nothing at login
	a.send("TYPING bob on")
	if l := b.nextEvent("TYPING"); strings.Join(l.Args, " ") != "1000 alice on" {
		t.Fatalf("bob got TYPING %q", l.Args)
	}
	b.send("TYPING 1000 off")
	if l := a.nextEvent("TYPING"); strings.Join(l.Args, " ") != "1001 bob off" {
		t.Fatalf("alice got TYPING %q", l.Args)
	}
	a.want("TYPING #team on", protocol.CodeSyntax)
	a.want("TYPING alice on", protocol.CodeSyntax)
	a.want("TYPING bob maybe", protocol.CodeSyntax)
	a.want("TYPING nobody on", protocol.CodeNoSuchUser)
	a.want("READ #team 5", protocol.CodeSyntax)
	a.want("READ bob x", protocol.CodeSyntax)

	b.want("SET typing off", protocol.CodeOK)
	a.send("TYPING bob on")
	b.send("TYPING alice on")
	a.quiet()
	b.quiet()
	b.want("SET typing on", protocol.CodeOK)
	a.want("SET typing off", protocol.CodeOK)
	a.send("TYPING bob on")
	b.send("TYPING alice on")
	a.quiet()
	b.quiet()
}

// TestTypingBudget: TYPING costs no message token within its own budget
// (noteBurst at once, noteRate a second: were they charged, twenty in one
// write to a session of a burst of ten would be a flood); past it nothing
// more is relayed and each costs a message token, so a flood of them is
// cut off as a flood of messages is.
func TestTypingBudget(t *testing.T) {
	const rate, burst = 5, 10
	srv := limitServer(t, func(c *Config) {
		c.Limits.MsgRate, c.Limits.MsgBurst, c.Limits.FloodAfter = rate, burst, 300*time.Millisecond
	})
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	register(r, "bob", "pw")
	carol := register(r, "carol", "pw")
	b := dialFrom(t, srv, "bob", "127.0.0.2")
	b.login("bob", "pw")
	b.quiet()
	a := dialFrom(t, srv, "alice", "127.0.0.3")
	a.login("alice", "pw")

	// Within the budget: relayed, and the message budget is untouched.
	start := time.Now()
	many := make([]string, noteBurst)
	for i := range many {
		many[i] = "TYPING bob on"
	}
	a.pipeline(many)
	for range noteBurst {
		b.nextEvent("TYPING")
	}
	for i := range burst {
		sent(t, a.do(fmt.Sprint("MSG carol within the burst ", i)), "stored", carol)
	}
	// Past it: a flood, slowed and cut.
	flood := make([]string, 1000)
	for i := range flood {
		flood[i] = "TYPING bob on"
	}
	a.pipeline(flood)
	if reason, _ := a.bye(); reason != reasonFlood {
		t.Fatalf("BYE %s, want %s", reason, reasonFlood)
	}
	// bob got at most what the budget refilled meanwhile (measured, not
	// assumed: this is no timed test).
	most := int(noteRate*time.Since(start).Seconds()) + 1
	_, before := b.collect("PING")
	n := 0
	for _, l := range before {
		if l.Kind == "TYPING" {
			n++
		}
	}
	if n > most {
		t.Errorf("bob got %d TYPING of a flood of 1000; the budget allows %d", n, most)
	}
}

package serve

import (
	"io"
	"strings"
	"testing"
	"time"

	"qchat/protocol"
)

// Two link keys as clients send them (LINKKEY): the server only passes
// them on.
const (
	aliceKey = "SHA256:K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA"
	bobKey   = "SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk"
)

// grant is what one side learns from its 260 reply.
type grant struct {
	ticket, peer, endpoint, by, peerKey, secret string
}

func parseGrant(t *testing.T, l protocol.Line) grant {
	t.Helper()
	f := strings.Fields(l.Text)
	if l.Code != protocol.CodeTicket || len(f) != 6 {
		t.Fatalf("got %d %q, want 260 <ticket> <peer> <endpoint> <link-by> <peer-key> <secret>", l.Code, l.Text)
	}
	return grant{f[0], f[1], f[2], f[3], f[4], f[5]}
}

// acceptedChat has alice offer bob a chat and bob accept it; it returns
// what each side was granted.
func acceptedChat(t *testing.T, alice, bob *client) (grant, grant) {
	t.Helper()
	alice.send("@offer CHAT bob")
	ev := bob.waitFor("an OFFER", func(l protocol.Line) bool { return l.Kind == "OFFER" })
	gb := parseGrant(t, bob.want("ACCEPT chat "+ev.Args[0], protocol.CodeTicket))
	ga := parseGrant(t, alice.waitFor("the 260", func(l protocol.Line) bool { return l.Tag == "offer" }))
	return ga, gb
}

// TestLinkKeysPassedWithTickets: a direct link needs a link key on both
// sides; each side's 260 names the other's key and holds a relay secret
// of its own.
func TestLinkKeysPassedWithTickets(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	alice, bob := dial(t, srv, "alice"), dial(t, srv, "bob")
	aliceID, bobID := register(alice, "alice", "pw"), register(bob, "bob", "pw")
	alice.login("alice", "pw")
	bob.login("bob", "pw")
	bob.want("PING", protocol.CodeOK) // bob's login has run: he is online for alice

	alice.want("LINKKEY SHA256:short", protocol.CodeSyntax)
	alice.want("LINKKEY MD5:"+aliceKey[7:], protocol.CodeSyntax)
	// Without a key nobody may offer or accept a link.
	if l := alice.want("CHAT bob", protocol.CodeSequence); !strings.Contains(l.Text, "LINKKEY") {
		t.Errorf("CHAT without a key: %q does not say what is missing", l.Text)
	}
	alice.want("LINKKEY "+aliceKey, protocol.CodeOK)
	alice.send("@offer CHAT bob")
	ev := bob.waitFor("an OFFER", func(l protocol.Line) bool { return l.Kind == "OFFER" })
	bob.want("ACCEPT chat "+ev.Args[0], protocol.CodeSequence)
	bob.want("LINKKEY "+bobKey, protocol.CodeOK)
	gb := parseGrant(t, bob.want("ACCEPT chat "+ev.Args[0], protocol.CodeTicket))
	ga := parseGrant(t, alice.waitFor("the 260", func(l protocol.Line) bool { return l.Tag == "offer" }))

	if ga.ticket != gb.ticket || ga.peer != idStr(bobID) || gb.peer != idStr(aliceID) {
		t.Errorf("grants %+v and %+v", ga, gb)
	}
	if ga.peerKey != bobKey || gb.peerKey != aliceKey {
		t.Errorf("alice was given key %s (want bob's), bob %s (want alice's)", ga.peerKey, gb.peerKey)
	}
	if ga.secret == gb.secret || len(ga.secret) < 26 || ga.secret == ga.ticket {
		t.Errorf("relay secrets %q and %q: want two of their own", ga.secret, gb.secret)
	}
}

// TestRelayNeedsSideSecret: a ticket alone (as anyone who saw it on the
// wire knows it) does not open a relay; each side's secret opens its own
// slot once, and the two slots are then joined.
func TestRelayNeedsSideSecret(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	alice, bob := dial(t, srv, "alice"), dial(t, srv, "bob")
	register(alice, "alice", "pw")
	register(bob, "bob", "pw")
	alice.login("alice", "pw")
	bob.login("bob", "pw")
	bob.want("PING", protocol.CodeOK) // bob's login has run: he is online for alice
	alice.want("LINKKEY "+aliceKey, protocol.CodeOK)
	bob.want("LINKKEY "+bobKey, protocol.CodeOK)
	ga, gb := acceptedChat(t, alice, bob)

	eve := dial(t, srv, "eve")
	eve.want("RELAY "+ga.ticket, protocol.CodeSyntax)
	eve.want("RELAY "+ga.ticket+" "+ga.ticket, protocol.CodeForbidden)
	eve.want("RELAY "+ga.ticket+" "+strings.ToUpper(ga.secret), protocol.CodeForbidden)

	// Alice's side waits in the relay; her secret a second time is refused.
	a1 := dial(t, srv, "a1")
	a1.send("RELAY " + ga.ticket + " " + ga.secret)
	a2 := dial(t, srv, "a2")
	if l := a2.want("RELAY "+ga.ticket+" "+ga.secret, protocol.CodeForbidden); !strings.Contains(l.Text, "already") {
		t.Errorf("second use of a side's secret: %q", l.Text)
	}
	// Bob's side joins it: both hear 200 and the bytes cross.
	b1 := dial(t, srv, "b1")
	b1.send("RELAY " + gb.ticket + " " + gb.secret)
	for _, c := range []*client{a1, b1} {
		if l := c.next(); l.Code != protocol.CodeOK {
			t.Fatalf("%s: got %d %s, want 200 relay open", c.name, l.Code, l.Text)
		}
	}
	a1.send("through")
	b1.conn.SetReadDeadline(time.Now().Add(ioWait))
	got := make([]byte, len("through\n"))
	if _, err := io.ReadFull(b1.rd, got); err != nil || string(got) != "through\n" {
		t.Fatalf("relayed %q, %v", got, err)
	}
	// Used: neither secret opens anything again.
	b2 := dial(t, srv, "b2")
	b2.want("RELAY "+gb.ticket+" "+gb.secret, protocol.CodeForbidden)
	b2.want("RELAY "+ga.ticket+" "+ga.secret, protocol.CodeForbidden)
}

// relayPair logs alice and bob in on srv with link keys.
func relayPair(t *testing.T, srv *Server) (alice, bob *client, aliceID int64) {
	t.Helper()
	alice, bob = dial(t, srv, "alice"), dial(t, srv, "bob")
	aliceID = register(alice, "alice", "pw")
	register(bob, "bob", "pw")
	alice.login("alice", "pw")
	bob.login("bob", "pw")
	bob.want("PING", protocol.CodeOK)
	alice.want("LINKKEY "+aliceKey, protocol.CodeOK)
	bob.want("LINKKEY "+bobKey, protocol.CodeOK)
	return alice, bob, aliceID
}

// relayTo sends RELAY for g on a new connection.
func relayTo(t *testing.T, srv *Server, name string, g grant) *client {
	c := dial(t, srv, name)
	c.send("RELAY " + g.ticket + " " + g.secret)
	return c
}

func wantRelay(t *testing.T, code int, what string, cs ...*client) {
	t.Helper()
	for _, c := range cs {
		l := c.next()
		if l.Code != code || !strings.Contains(l.Text, what) {
			t.Fatalf("%s: got %d %s, want %d %s", c.name, l.Code, l.Text, code, what)
		}
	}
}

// TestRelayCaps: a user may hold --relay-per-user relay sides at once and
// an address --relay-per-addr; past either the RELAY is answered 452 with
// a line that names the cap, and the side may come again once a link of
// the user (or address) ended.
func TestRelayCaps(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		srv := limitServer(t, func(c *Config) { c.Limits.MsgRate, c.Limits.RelayPerUser, c.Limits.RelayPerAddr = 0, 1, 0 })
		alice, bob, aliceID := relayPair(t, srv)
		ga1, gb1 := acceptedChat(t, alice, bob)
		ga2, gb2 := acceptedChat(t, alice, bob)
		a1 := relayTo(t, srv, "a1", ga1) // alice's one side: waits for bob's
		wantRelay(t, protocol.CodeRateLimit, "--relay-per-user", relayTo(t, srv, "a2", ga2))
		b1 := relayTo(t, srv, "b1", gb1)
		wantRelay(t, protocol.CodeOK, "relay open", a1, b1)
		wantRelay(t, protocol.CodeRateLimit, "--relay-per-user", relayTo(t, srv, "b2", gb2)) // bob holds one
		// The link ends: the places come back, and the refused sides
		// were not used up.
		a1.conn.Close()
		b1.conn.Close()
		waitUntil(t, "the link's places given back", func() bool {
			u, _ := srv.relays.sides(aliceID, "")
			return u == 0
		})
		a2, b2 := relayTo(t, srv, "a2", ga2), relayTo(t, srv, "b2", gb2)
		wantRelay(t, protocol.CodeOK, "relay open", a2, b2)
	})
	t.Run("per address", func(t *testing.T) {
		srv := limitServer(t, func(c *Config) { c.Limits.MsgRate, c.Limits.RelayPerUser, c.Limits.RelayPerAddr = 0, 0, 2 })
		alice, bob, _ := relayPair(t, srv)
		ga1, gb1 := acceptedChat(t, alice, bob)
		ga2, _ := acceptedChat(t, alice, bob)
		a1, b1 := relayTo(t, srv, "a1", ga1), relayTo(t, srv, "b1", gb1)
		wantRelay(t, protocol.CodeOK, "relay open", a1, b1)
		wantRelay(t, protocol.CodeRateLimit, "--relay-per-addr", relayTo(t, srv, "a2", ga2))
	})
}

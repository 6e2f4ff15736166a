package serve

import (
	"strings"
	"testing"

	"qchat/protocol"
)

// ENDPOINTS: a client learns the endpoint the server sees of it, and the
// global IPv6 endpoints it announces go to its peers with their tickets,
// after the observed one. Anything else is refused.
func TestEndpointsAnnounced(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	alice, bob := dial(t, srv, "alice"), dial(t, srv, "bob")
	register(alice, "alice", "pw")
	register(bob, "bob", "pw")
	alice.login("alice", "pw")
	bob.login("bob", "pw")
	alice.want("LINKKEY "+aliceKey, protocol.CodeOK)
	bob.want("LINKKEY "+bobKey, protocol.CodeOK)
	bob.quiet()

	alice.want("ENDPOINTS 1.2.3.4:5", protocol.CodeSyntax)
	alice.want("ENDPOINTS [fd00::1]:5", protocol.CodeSyntax)      // private
	alice.want("ENDPOINTS [fe80::1%eth0]:5", protocol.CodeSyntax) // link-local
	alice.want("ENDPOINTS [2001:db8::1]:0", protocol.CodeSyntax)  // no port
	alice.want("ENDPOINTS [2001:db8::1]:1 [2001:db8::1]:2 [2001:db8::1]:3 [2001:db8::1]:4 [2001:db8::1]:5", protocol.CodeSyntax)
	alice.want("ENDPOINTS port=0", protocol.CodeSyntax)
	alice.want("ENDPOINTS port=65536", protocol.CodeSyntax)
	alice.want("ENDPOINTS [2001:db8::1]:1 port=4000", protocol.CodeSyntax) // port= comes first
	observed := alice.conn.LocalAddr().String()
	l := alice.want("ENDPOINTS port=4000 [2001:db8:1::2]:4000", protocol.CodeOK)
	if l.Text != observed+" port=4000 [2001:db8:1::2]:4000" {
		t.Errorf("ENDPOINTS reply %q, want the observed endpoint %s and the one taken", l.Text, observed)
	}
	if l := bob.want("ENDPOINTS", protocol.CodeOK); l.Text != bob.conn.LocalAddr().String() {
		t.Errorf("ENDPOINTS reply %q, want %s", l.Text, bob.conn.LocalAddr())
	}

	ga, gb := acceptedChatFields(t, alice, bob)
	if len(ga) != 6 {
		t.Errorf("alice's ticket %q: bob announced nothing, want 6 fields", ga)
	}
	if len(gb) != 8 || gb[2] != observed || gb[6] != "port=4000" || gb[7] != "[2001:db8:1::2]:4000" {
		t.Errorf("bob's ticket %q, want alice's observed endpoint, her peer port, then her IPv6 one", gb)
	}
}

// acceptedChatFields has alice offer bob a chat and bob accept it, and
// returns the words of each side's 260.
func acceptedChatFields(t *testing.T, alice, bob *client) ([]string, []string) {
	t.Helper()
	alice.send("@offer CHAT bob")
	ev := bob.waitFor("an OFFER", func(l protocol.Line) bool { return l.Kind == "OFFER" })
	gb := bob.want("ACCEPT chat "+ev.Args[0], protocol.CodeTicket)
	ga := alice.waitFor("the 260", func(l protocol.Line) bool { return l.Tag == "offer" })
	if ga.Code != protocol.CodeTicket {
		t.Fatalf("alice got %d %s", ga.Code, ga.Text)
	}
	return strings.Fields(ga.Text), strings.Fields(gb.Text)
}

package serve

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"qchat/protocol"
)

// TestRelayHalfCloseKeepsOtherWay: a side that ends its direction (as a
// side moving its link to a direct connection does) is still owed what
// the other side sends; the relay passes the half-close on and carries
// the other direction to its end, however long that takes.
func TestRelayHalfCloseKeepsOtherWay(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	alice, bob := dial(t, srv, "alice"), dial(t, srv, "bob")
	register(alice, "alice", "pw")
	register(bob, "bob", "pw")
	alice.login("alice", "pw")
	bob.login("bob", "pw")
	alice.want("LINKKEY "+aliceKey, protocol.CodeOK)
	bob.want("LINKKEY "+bobKey, protocol.CodeOK)
	ga, gb := acceptedChat(t, alice, bob)
	a, b := dial(t, srv, "a"), dial(t, srv, "b")
	a.send("RELAY " + ga.ticket + " " + ga.secret)
	b.send("RELAY " + gb.ticket + " " + gb.secret)
	for _, c := range []*client{a, b} {
		if l := c.next(); l.Code != protocol.CodeOK {
			t.Fatalf("%s: got %d %s, want 200 relay open", c.name, l.Code, l.Text)
		}
	}
	a.send("last from a")
	a.conn.(*net.TCPConn).CloseWrite()
	b.conn.SetReadDeadline(time.Now().Add(ioWait))
	fromA, err := io.ReadAll(b.rd)
	if err != nil || string(fromA) != "last from a\n" {
		t.Fatalf("b read %q, %v: want a's line, then the end", fromA, err)
	}
	// b goes on writing after a's end, for longer than a moment.
	want := bytes.Repeat([]byte("b"), 4<<20)
	go func() {
		for i := 0; i < 4; i++ {
			b.conn.Write(want[i<<20 : (i+1)<<20])
		}
		b.conn.(*net.TCPConn).CloseWrite()
	}()
	a.conn.SetReadDeadline(time.Now().Add(ioWait))
	got, err := io.ReadAll(a.rd)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("a read %d bytes (%v), want the %d b sent after a's end", len(got), err, len(want))
	}
}

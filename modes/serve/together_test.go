package serve

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/protocol"
)

// The two tickets of an accepted offer are timed to arrive at once: the
// one to the nearer side waits for the difference of the one-way delays,
// whichever side that is, and the acceptor's reply stays in order with
// its later requests.
func TestTicketsArriveTogether(t *testing.T) {
	for _, far := range []string{"offerer", "acceptor"} {
		t.Run("far "+far, func(t *testing.T) {
			var rtts sync.Map // client's local address -> its round trip
			cfg := Defaults()
			cfg.RTT = func(c net.Conn) time.Duration {
				if d, ok := rtts.Load(c.RemoteAddr().String()); ok {
					return d.(time.Duration)
				}
				return 0
			}
			srv := testServerCfg(t, t.TempDir(), cfg)
			defer srv.Shutdown()
			alice, bob := dial(t, srv, "alice"), dial(t, srv, "bob")
			register(alice, "alice", "pw")
			bobID := register(bob, "bob", "pw")
			alice.login("alice", "pw")
			bob.login("bob", "pw")
			alice.want("LINKKEY "+aliceKey, protocol.CodeOK)
			bob.want("LINKKEY "+bobKey, protocol.CodeOK)
			bob.quiet() // online for everyone
			slow := alice
			if far == "acceptor" {
				slow = bob
			}
			const rtt = 300 * time.Millisecond // one way 150 ms further than the other side
			rtts.Store(slow.conn.LocalAddr().String(), rtt)

			alice.send("@c CHAT " + strconv.FormatInt(bobID, 10))
			offer := bob.waitFor("the OFFER", func(l protocol.Line) bool { return l.Kind == "OFFER" })
			bob.send("@a ACCEPT chat " + offer.Args[0])
			bob.send("@p PING after")
			isTicket := func(tag string) func(protocol.Line) bool {
				return func(l protocol.Line) bool { return l.Tag == tag && l.Code == protocol.CodeTicket }
			}
			first, second := alice, bob
			firstTag, secondTag := "c", "a"
			if far == "acceptor" {
				first, second, firstTag, secondTag = bob, alice, "a", "c"
			}
			l1 := first.waitFor("the first ticket", isTicket(firstTag))
			t1 := time.Now()
			l2 := second.waitFor("the second ticket", isTicket(secondTag))
			gap := time.Since(t1)
			if gap < rtt/2*9/10 {
				t.Errorf("the nearer side's ticket came %v after the further side's, want about %v", gap, rtt/2)
			}
			if strings.Fields(l1.Text)[0] != strings.Fields(l2.Text)[0] {
				t.Errorf("different tickets: %q and %q", l1.Text, l2.Text)
			}
			// The acceptor's next reply comes after its ticket.
			if l := bob.next(); l.Tag != "p" {
				t.Errorf("bob: after the ticket, got %+v, want the PING reply", l)
			}
		})
	}
}

package serve

import (
	"slices"
	"testing"
	"time"

	"qchat/protocol"
)

func TestWheel(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	w := newWheel(time.Second, t0)
	a, b, c := &session{id: 1}, &session{id: 2}, &session{id: 3}
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	w.schedule(a, at(2*time.Second))
	w.schedule(b, at(2500*time.Millisecond))
	w.schedule(c, at(300*time.Second)) // past the ring: a later round
	ids := func(es []wheelEntry) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.s.id)
		}
		slices.Sort(out)
		return out
	}
	if got := w.due(nil, at(time.Second)); len(got) != 0 {
		t.Fatalf("due at 1s: %v", ids(got))
	}
	if got := ids(w.due(nil, at(2*time.Second))); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("due at 2s: %v, want a and b", got)
	}
	// b rescheduled twice: only the last counts.
	w.schedule(b, at(5*time.Second))
	w.schedule(b, at(4*time.Second))
	if got := ids(w.due(nil, at(5*time.Second))); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("due at 5s: %v, want b once", got)
	}
	// A time past goes at the next tick, never lost.
	w.schedule(a, at(0))
	if got := ids(w.due(nil, at(6*time.Second))); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("a scheduled in the past: %v", got)
	}
	if got := ids(w.due(nil, at(299*time.Second))); len(got) != 0 {
		t.Fatalf("due at 299s: %v (c is for 300s)", got)
	}
	if got := ids(w.due(nil, at(300*time.Second))); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("due at 300s: %v, want c", got)
	}
}

// TestWheelDeadlines: the checks in the wheel close a connection that
// does not log in in time and one that stops answering PING, and keep
// one that answers.
func TestWheelDeadlines(t *testing.T) {
	srv, _ := parkServer(t, func(c *Config) {
		c.LoginTimeout = 300 * time.Millisecond
		c.PingInterval, c.PingTimeout = 100*time.Millisecond, 200*time.Millisecond
	})
	idle := dial(t, srv, "idle")
	idle.waitFor("BYE login-timeout", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == "login-timeout" })

	reg := dial(t, srv, "reg")
	register(reg, "alice", "pw")
	register(reg, "bob", "pw")
	alice, bob := dial(t, srv, "alice"), dial(t, srv, "bob")
	alice.login("alice", "pw")
	bob.login("bob", "pw")
	bob.waitFor("a PING", func(l protocol.Line) bool { return l.Kind == "PING" }) // and never answers
	pings := 0
	for {
		l := alice.next()
		if l.Kind == "PING" {
			pings++
			alice.send("PONG " + l.Args[0])
		}
		if l.Kind == "PRESENCE" && l.Args[1] == "bob" && l.Args[2] == "offline" {
			break
		}
	}
	if pings == 0 {
		t.Fatal("alice was never pinged")
	}
	bob.waitFor("BYE ping-timeout", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == "ping-timeout" })
	if !srv.hub.isOnline(srv.dir.lookup("alice").id) {
		t.Fatal("alice answered every PING and went offline")
	}
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
)

func TestParseServers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "10.0.0.5:4000", want: []string{"10.0.0.5:4000"}},
		{in: "a:4000, b:4000 ,[::1]:4000", want: []string{"a:4000", "b:4000", "[::1]:4000"}},
		{in: "a:4000,,b:4000", err: "an empty address in the list"},
		{in: "a:4000,", err: "an empty address in the list"},
		{in: "a:4000,localhost", err: `"localhost" is not a HOST:PORT address`},
		{in: "a:4000,A:4000", err: "A:4000 is listed twice"},
		{in: " ", err: "no server address"},
	} {
		got, err := ParseServers(tc.in)
		switch {
		case tc.err == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("ParseServers(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseServers(%q) error %v, want one saying %q", tc.in, err, tc.err)
		}
	}
}

// TestServerPlan: the order servers are tried in. Listed: from the first
// at the start, from the one after the lost one after a loss. Random:
// from a random one at the start; after a loss from a random one of the
// others (the clients of a dead node spread over the rest); the lost one
// always last.
func TestServerPlan(t *testing.T) {
	picked := 0
	s := NewSession(SessionConfig{Addr: "a:1,b:1,c:1,d:1", Order: OrderListed, Pick: func(n int) int { return picked % n }})
	defer s.Close()
	check := func(lost int, want ...int) {
		t.Helper()
		if got := s.plan(lost); !slices.Equal(got, want) {
			t.Errorf("%s, lost %d, pick %d: plan %v, want %v", s.cfg.Order, lost, picked, got, want)
		}
	}
	check(-1, 0, 1, 2, 3)
	check(0, 1, 2, 3, 0)
	check(2, 3, 0, 1, 2)
	s.cfg.Order = OrderRandom
	picked = 2
	check(-1, 2, 3, 0, 1)
	check(0, 3, 1, 2, 0)
	check(3, 2, 0, 1, 3)
	picked = 0
	check(1, 2, 3, 0, 1)

	one := NewSession(SessionConfig{Addr: "a:1", Pick: func(int) int { t.Error("a choice among one server"); return 0 }})
	defer one.Close()
	if got := one.plan(-1); !slices.Equal(got, []int{0}) {
		t.Errorf("one server: %v", got)
	}
	if got := one.plan(0); !slices.Equal(got, []int{0}) {
		t.Errorf("one server, lost: %v", got)
	}
}

// deadAddr is an address where nothing listens (a server that was there).
func deadAddr(t *testing.T) string {
	s := fakeserver.New(t, "")
	s.Close()
	return s.Addr()
}

// TestSessionSkipsDeadServer: the first connection goes round the list:
// a server that cannot be reached is skipped at once (said through
// Skipped), and the session runs on the next. None reachable is one
// error naming each server and why.
func TestSessionSkipsDeadServer(t *testing.T) {
	dead := deadAddr(t)
	s := fakeserver.New(t, "220 test qchat/1 ready cid")
	var skipped []ConnEvent
	sess := NewSession(SessionConfig{Addr: dead + "," + s.Addr(), Order: OrderListed, Clock: newFakeClock(), Backoff: noJitter,
		User: "alice", Password: "pw", Options: Options{NoTLS: true}, Skipped: func(ev ConnEvent) { skipped = append(skipped, ev) }})
	defer sess.Close()
	done := fakeserver.Async(func() error { return sess.Connect(context.Background(), nil) })
	playLogin(t, s.Accept(t))
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	if sess.Addr() != s.Addr() {
		t.Errorf("Addr() = %s, want %s", sess.Addr(), s.Addr())
	}
	if len(skipped) != 1 || skipped[0].Failed != dead || skipped[0].Server != s.Addr() {
		t.Fatalf("skipped %+v, want %s skipped for %s", skipped, dead, s.Addr())
	}
	want := "cannot connect to " + dead + ": nothing is listening there (connection refused) — " + serverHint + "; trying " + s.Addr() + "…"
	if got := ConnText(skipped[0]); got != want {
		t.Errorf("said %q\nwant %q", got, want)
	}

	other := deadAddr(t)
	none := NewSession(SessionConfig{Addr: dead + "," + other, Order: OrderListed, Options: Options{NoTLS: true}})
	defer none.Close()
	err := none.Connect(context.Background(), nil)
	var ue *UnreachableError
	var de *DialError
	if !errors.As(err, &ue) || !errors.As(err, &de) || IsFinal(err) {
		t.Fatalf("Connect with no server up: %v, want an UnreachableError of DialErrors, not final", err)
	}
	if !strings.HasPrefix(err.Error(), "none of the 2 servers could be reached: cannot connect to "+dead+": nothing is listening there") ||
		!strings.Contains(err.Error(), "; cannot connect to "+other+": nothing is listening there") {
		t.Errorf("error %q", err)
	}
}

// TestSessionMovesToNextServer: when the server in use is lost, the next
// one is tried after the short first wait, a dead one skipped without
// a wait; the message whose answer was lost is sent again to the new
// server with its client id, and an event the old server delivered and
// the new one delivers again (its ACK was lost) is shown once. Each step
// is said: in words, and in the JSON record.
func TestSessionMovesToNextServer(t *testing.T) {
	a := fakeserver.New(t, "220 a qchat/1 ready cid")
	b := deadAddr(t)
	c := fakeserver.New(t, "220 c qchat/1 ready cid")
	clock := newFakeClock()
	sess := NewSession(SessionConfig{Addr: strings.Join([]string{a.Addr(), b, c.Addr()}, ","), Order: OrderListed, Clock: clock,
		Backoff: noJitter, User: "alice", Password: "pw", Options: Options{NoTLS: true}})
	defer sess.Close()
	done := fakeserver.Async(func() error { return sess.Connect(context.Background(), nil) })
	sa := a.Accept(t)
	playLogin(t, sa)
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}

	var rec Recorder
	var shown []int64
	receive := func() {
		t.Helper()
		for {
			select {
			case ev := <-sess.Events():
				if ev.Conn != nil {
					t.Fatalf("connection event %+v, want a message", *ev.Conn)
				}
				m, err := ParseMessage(ev.Line)
				if err != nil {
					t.Fatal(err)
				}
				rec.Receive(sess, m, func(m Message) { shown = append(shown, m.ID) })
				return
			case <-time.After(fakeserver.Guard):
				t.Fatal("no message")
			}
		}
	}
	sa.Send(t, "MSG 7 1001 bob "+fakeserver.WireTime+" one")
	receive()
	if got := sa.Next(t); got != "ACK 7" {
		t.Fatalf("a got %q, want ACK 7", got)
	}
	p, _ := sess.Submit("bob", "hi")
	if cmd := sa.Expect(t, "MSG"); cmd.ClientID != p.CID {
		t.Fatalf("MSG %+v, want id=%s", cmd, p.CID)
	}
	sa.Close() // a dies: no answer to the MSG, and the ACK of 7 may not have counted

	lost := nextConn(t, sess)
	if lost.State != ConnLost || lost.Server != a.Addr() || lost.Next != b {
		t.Fatalf("%+v, want lost %s, next %s", lost, a.Addr(), b)
	}
	if got, want := ConnText(lost), "connection to "+a.Addr()+" lost (the server closed the connection); trying "+b+"…"; got != want {
		t.Errorf("said %q\nwant %q", got, want)
	}
	if ev := nextConn(t, sess); ev.State != ConnReconnecting || ev.Server != b || ev.Attempt != 1 || ev.Wait != 75*time.Millisecond {
		t.Errorf("%+v, want attempt 1 at %s after 75ms", ev, b)
	}
	if _, err := sess.Do(context.Background(), "LIST"); err == nil || !strings.Contains(err.Error(), "not connected to "+a.Addr()) {
		t.Errorf("a request while down: %v, want not connected to %s", err, a.Addr())
	}
	clock.next(t, 75*time.Millisecond)
	skip := nextConn(t, sess)
	if skip.State != ConnReconnecting || skip.Server != c.Addr() || skip.Failed != b || skip.Attempt != 2 || skip.Wait != 0 {
		t.Errorf("%+v, want attempt 2 at %s at once, %s failed", skip, c.Addr(), b)
	}
	if got := ConnText(skip); !strings.HasPrefix(got, "cannot connect to "+b+": nothing is listening there") || !strings.HasSuffix(got, "; trying "+c.Addr()+"…") {
		t.Errorf("said %q", got)
	}

	sc := c.Accept(t)
	playLogin(t, sc)
	cmd := sc.Expect(t, "MSG")
	if cmd.ClientID != p.CID || !cmd.Resend {
		t.Fatalf("to c: %+v, want MSG resend=%s", cmd, p.CID)
	}
	back := nextConn(t, sess)
	if back.State != ConnBack || back.Server != c.Addr() || back.From != a.Addr() || back.Resent != 1 || back.Down != 75*time.Millisecond {
		t.Fatalf("%+v, want back on %s from %s, 1 resent", back, c.Addr(), a.Addr())
	}
	want := "reconnected: back on " + c.Addr() + " after 75ms (moved from " + a.Addr() + "); 1 message without an answer sent again"
	if got := ConnText(back); got != want {
		t.Errorf("said %q\nwant %q", got, want)
	}
	j, _ := json.Marshal(ConnRecord(back))
	if !strings.Contains(string(j), `"state":"back","server":"`+c.Addr()+`"`) || !strings.Contains(string(j), `"previous":"`+a.Addr()+`"`) {
		t.Errorf("JSON %s", j)
	}
	if sess.Addr() != c.Addr() {
		t.Errorf("Addr() = %s, want %s", sess.Addr(), c.Addr())
	}
	sc.Reply(t, cmd.Tag, "250 9 delivered 1001 "+fakeserver.WireTime)
	fakeserver.Await(t, fakeserver.Async(func() bool { <-p.Done(); return true }))
	if s, err := p.Result(); err != nil || s.ID != 9 {
		t.Errorf("the message: %+v, %v", s, err)
	}

	// c has what a had not seen acknowledged: 7 again, then 8
	sc.Send(t, "MSG 7 1001 bob "+fakeserver.WireTime+" one", "MSG 8 1001 bob "+fakeserver.WireTime+" two")
	receive()
	receive()
	if !slices.Equal(shown, []int64{7, 8}) {
		t.Errorf("shown %v, want 7 and 8 once each", shown)
	}
	for _, want := range []string{"ACK 7", "ACK 8"} {
		if got := sc.Next(t); got != want {
			t.Errorf("c got %q, want %q", got, want)
		}
	}
}

// TestSessionListFailsBacksOff: with every server of the list down, the
// session goes round it without waiting, waits (backoff) only before each
// new round, says once that none answers, and gives up naming them all.
func TestSessionListFailsBacksOff(t *testing.T) {
	a := fakeserver.New(t, "220 a qchat/1 ready cid")
	b := deadAddr(t)
	clock := newFakeClock()
	sess := NewSession(SessionConfig{Addr: a.Addr() + "," + b, Order: OrderListed, Clock: clock, Backoff: noJitter,
		User: "alice", Password: "pw", GiveUp: time.Second, Options: Options{NoTLS: true}})
	defer sess.Close()
	done := fakeserver.Async(func() error { return sess.Connect(context.Background(), nil) })
	sa := a.Accept(t)
	playLogin(t, sa)
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	a.Close()
	sa.Close()
	if ev := nextConn(t, sess); ev.State != ConnLost || ev.Next != b {
		t.Fatalf("%+v, want lost, next %s", ev, b)
	}
	// rounds: b after 75ms, a at once; b after 150ms, a at once; ...
	var said []string
	for i, st := range []struct {
		server string
		wait   time.Duration
	}{{b, 75}, {a.Addr(), 0}, {b, 150}, {a.Addr(), 0}, {b, 300}, {a.Addr(), 0}, {b, 475}, {a.Addr(), 0}} {
		ev := nextConn(t, sess)
		if ev.State != ConnReconnecting || ev.Attempt != i+1 || ev.Server != st.server || ev.Wait != st.wait*time.Millisecond {
			t.Fatalf("%+v, want attempt %d at %s after %dms", ev, i+1, st.server, st.wait)
		}
		if text := ConnText(ev); text != "" {
			said = append(said, text)
		}
		if st.wait > 0 {
			clock.next(t, st.wait*time.Millisecond)
		}
	}
	if len(said) != 2 || !strings.HasSuffix(said[0], "; trying "+a.Addr()+"…") ||
		!strings.HasPrefix(said[1], "cannot connect to "+a.Addr()+": ") || !strings.HasSuffix(said[1], "; none of the 2 servers answers: trying them again, less and less often…") {
		t.Errorf("said %q, want the move to %s, then once that none answers", said, a.Addr())
	}
	fakeserver.Await(t, fakeserver.Async(func() bool { <-sess.Done(); return true }))
	want := "gave up on " + a.Addr() + ", " + b + " after 1s without a connection: the last try, " + a.Addr() + ": nothing is listening there (connection refused)"
	if err := sess.Err(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Err() = %v\nwant %s…", err, want)
	}
}

// TestSessionTokensPerServer: a resumption token goes back to the server
// that gave it. Another server is offered it once (nodes that share a
// resumption key take each other's tokens); one that refuses it gets the
// password at once, on the same connection, and is never offered another
// server's token again.
func TestSessionTokensPerServer(t *testing.T) {
	a := fakeserver.New(t, "220 a qchat/1 ready cid resume")
	b := fakeserver.New(t, "220 b qchat/1 ready cid resume")
	clock := newFakeClock()
	sess := NewSession(SessionConfig{Addr: a.Addr() + "," + b.Addr(), Order: OrderListed, Clock: clock, Backoff: noJitter,
		User: "alice", Password: "pw", Options: Options{NoTLS: true}})
	defer sess.Close()
	done := fakeserver.Async(func() error { return sess.Connect(context.Background(), nil) })
	sc := a.Accept(t)
	playLogin(t, sc)
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	token := func(sc *fakeserver.Conn, tok string) {
		t.Helper()
		cmd := sc.Expect(t, "TOKEN")
		if tok == "" {
			sc.Reply(t, cmd.Tag, "502 no tokens here")
			return
		}
		sc.Reply(t, cmd.Tag, "231 "+tok+" 2026-11-29T10:00:00.000Z")
		select {
		case <-clock.waits: // the refresh, half way
		case <-time.After(fakeserver.Guard):
			t.Fatal("no refresh")
		}
	}
	move := func(from *fakeserver.Conn, to *fakeserver.Server) *fakeserver.Conn {
		t.Helper()
		from.Close()
		nextConn(t, sess) // lost
		nextConn(t, sess) // reconnecting
		clock.next(t, 75*time.Millisecond)
		return to.Accept(t)
	}
	token(sc, "1000.1795000000.fromA")

	sc = move(sc, b) // to b: a's token, refused, then the password
	cmd := sc.Expect(t, "RESUME")
	if cmd.Args[0] != "1000.1795000000.fromA" {
		t.Fatalf("b was offered %q, want a's token", cmd.Args[0])
	}
	sc.Reply(t, cmd.Tag, "535 login incorrect")
	playLogin(t, sc)
	token(sc, "") // b gives none this time
	if ev := nextConn(t, sess); ev.State != ConnBack || ev.Server != b.Addr() {
		t.Fatalf("%+v, want back on b", ev)
	}

	sc = move(sc, a) // back to a: its own token
	cmd = sc.Expect(t, "RESUME")
	if cmd.Args[0] != "1000.1795000000.fromA" {
		t.Fatalf("a was offered %q, want its token", cmd.Args[0])
	}
	sc.Reply(t, cmd.Tag, "230 1000 alice")
	token(sc, "1000.1795000000.fromA2")
	nextConn(t, sess) // back

	sc = move(sc, b) // b refused a's token before: the password, no RESUME
	playLogin(t, sc)
	token(sc, "1000.1795000000.fromB")
	nextConn(t, sess)

	sc = move(sc, a)
	if cmd = sc.Expect(t, "RESUME"); cmd.Args[0] != "1000.1795000000.fromA2" {
		t.Fatalf("a was offered %q, want its newest token", cmd.Args[0])
	}
	sc.Reply(t, cmd.Tag, "230 1000 alice")
	token(sc, "1000.1795000000.fromA3")
	nextConn(t, sess)

	sc = move(sc, b)
	if cmd = sc.Expect(t, "RESUME"); cmd.Args[0] != "1000.1795000000.fromB" {
		t.Fatalf("b was offered %q, want its own token", cmd.Args[0])
	}
}

package client

import (
	"context"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
)

// TestSessionResumesWithToken: after a login with the password the
// session asks for a resumption token and logs in again with it; a token
// the server refuses (535) is forgotten and the password used instead.
func TestSessionResumesWithToken(t *testing.T) {
	s := fakeserver.New(t, "220 test qchat/1 ready cid resume")
	clock := newFakeClock()
	sess, sc := sessionOn(t, s, clock, 0)
	giveToken := func(sc *fakeserver.Conn, tok string) {
		t.Helper()
		cmd := sc.Expect(t, "TOKEN")
		sc.Reply(t, cmd.Tag, "231 "+tok+" 2026-11-29T10:00:00.000Z")
		// The session asks for a fresh one half way to its expiry.
		select {
		case w := <-clock.waits:
			if w.d > 84*time.Hour || w.d < 84*time.Hour-time.Second {
				t.Errorf("refresh after %v, want half of the week left: 84h", w.d)
			}
		case <-time.After(fakeserver.Guard):
			t.Fatal("the session does not refresh its token")
		}
	}
	giveToken(sc, "1000.1795000000.first")

	sc.Close()
	nextConn(t, sess) // lost
	nextConn(t, sess) // reconnecting
	clock.next(t, 75*time.Millisecond)
	sc = s.Accept(t)
	cmd := sc.Expect(t, "RESUME")
	if cmd.Args[0] != "1000.1795000000.first" {
		t.Fatalf("RESUME %q, want the token", cmd.Args[0])
	}
	sc.Reply(t, cmd.Tag, "535 login incorrect")
	playLogin(t, sc) // refused: the password then
	giveToken(sc, "1000.1795000000.second")
	if ev := nextConn(t, sess); ev.State != ConnBack {
		t.Fatalf("%+v, want back", ev)
	}

	sc.Close()
	nextConn(t, sess)
	nextConn(t, sess)
	clock.next(t, 75*time.Millisecond)
	sc = s.Accept(t)
	cmd = sc.Expect(t, "RESUME")
	if cmd.Args[0] != "1000.1795000000.second" {
		t.Fatalf("RESUME %q, want the new token", cmd.Args[0])
	}
	sc.Reply(t, cmd.Tag, "230 1000 alice")
	giveToken(sc, "1000.1795000000.third") // no USER, no PASS
	if ev := nextConn(t, sess); ev.State != ConnBack {
		t.Fatalf("%+v, want back", ev)
	}
	if me := sess.Me(); me != (User{1000, "alice"}) {
		t.Errorf("Me() = %+v", me)
	}
}

// TestSpentTokenIsNotPresentedAgain: a token is good for one login (the
// server spends it), so after a RESUME it is forgotten: with no new one
// (the server gave none), the next login is with the password.
func TestSpentTokenIsNotPresentedAgain(t *testing.T) {
	a := fakeserver.New(t, "220 a qchat/1 ready cid resume")
	clock := newFakeClock()
	sess := NewSession(SessionConfig{Addr: a.Addr(), Clock: clock, Backoff: noJitter,
		User: "alice", Password: "pw", Options: Options{NoTLS: true}})
	defer sess.Close()
	done := fakeserver.Async(func() error { return sess.Connect(context.Background(), nil) })
	sc := a.Accept(t)
	playLogin(t, sc)
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	cmd := sc.Expect(t, "TOKEN")
	sc.Reply(t, cmd.Tag, "231 1000.1795000000.once 2026-11-29T10:00:00.000Z")
	select {
	case <-clock.waits: // the refresh, half way
	case <-time.After(fakeserver.Guard):
		t.Fatal("no refresh")
	}
	reconnect := func() *fakeserver.Conn {
		t.Helper()
		sc.Close()
		nextConn(t, sess) // lost
		nextConn(t, sess) // reconnecting
		clock.next(t, 75*time.Millisecond)
		return a.Accept(t)
	}
	sc = reconnect()
	cmd = sc.Expect(t, "RESUME")
	sc.Reply(t, cmd.Tag, "230 1000 alice")
	cmd = sc.Expect(t, "TOKEN")
	sc.Reply(t, cmd.Tag, "502 no tokens now")
	nextConn(t, sess) // back

	sc = reconnect()
	playLogin(t, sc) // USER, not the spent token again
}

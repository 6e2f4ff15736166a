package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
	"qchat/xfer"
)

func TestBackoffDelay(t *testing.T) {
	low := Backoff{Base: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return 0 }}
	high := low
	high.Rand = func() float64 { return 0.999999 }
	for n, d := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		d *= time.Millisecond
		if got := low.Delay(n); got != d/2 {
			t.Errorf("Delay(%d) with no jitter = %v, want %v", n, got, d/2)
		}
		if got := high.Delay(n); got < d-time.Millisecond || got >= d {
			t.Errorf("Delay(%d) with the most jitter = %v, want just under %v", n, got, d)
		}
	}
	if got := low.Delay(1000); got != 500*time.Millisecond {
		t.Errorf("Delay(1000) = %v: the cap must hold for any attempt", got)
	}
	// Defaults: 200ms doubling to 5s, jittered in [d/2, d).
	for n := range 12 {
		d := min(200*time.Millisecond<<n, 5*time.Second)
		if got := (Backoff{}).Delay(n); got < d/2 || got >= d {
			t.Errorf("default Delay(%d) = %v, want in [%v, %v)", n, got, d/2, d)
		}
	}
}

func TestOutbox(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	o := NewOutbox()
	a := o.Add("bob", "one", now)
	b := o.Add("#team", "two", now)
	c := o.Add("1001", "three", now)
	seen := map[string]bool{}
	for _, p := range []*Pending{a, b, c} {
		if !protocol.ValidTag(p.CID) || seen[p.CID] {
			t.Errorf("client id %q is not a valid, fresh id", p.CID)
		}
		seen[p.CID] = true
	}
	if other := NewOutbox().Add("bob", "one", now); seen[other.CID] {
		t.Errorf("two outboxes gave the same id %q", other.CID)
	}
	if w := o.Waiting(); len(w) != 3 || w[0] != a || w[1] != b || w[2] != c {
		t.Fatalf("Waiting() = %v, want a, b, c in order", w)
	}
	want := Sent{ID: 7, Status: "delivered", Group: "#team", Time: now}
	if !o.Finish(b, want, nil) {
		t.Fatal("Finish(b) = false")
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("b is finished but Done is open")
	}
	if s, err := b.Result(); s != want || err != nil {
		t.Errorf("b.Result() = %+v, %v", s, err)
	}
	if o.Finish(b, Sent{}, errors.New("late")) {
		t.Error("a second Finish(b) changed it")
	}
	if s, err := b.Result(); s != want || err != nil {
		t.Errorf("b.Result() after a second Finish = %+v, %v", s, err)
	}
	if w := o.Waiting(); len(w) != 2 || w[0] != a || w[1] != c || o.Len() != 2 {
		t.Fatalf("Waiting() after Finish(b) = %v, want a, c", w)
	}
	select {
	case <-a.Done():
		t.Error("a is done without an answer")
	default:
	}
}

// fakeClock lets a test see each wait a Session asks for and say when it
// is over.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), waits: make(chan fakeWait, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- fakeWait{d, ch}
	return ch
}

// next takes the next wait the session asked for, checks its length,
// moves the clock past it and ends it.
func (c *fakeClock) next(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case w := <-c.waits:
		if w.d != want {
			t.Errorf("the session waits %v, want %v", w.d, want)
		}
		c.mu.Lock()
		c.now = c.now.Add(w.d)
		now := c.now
		c.mu.Unlock()
		w.ch <- now
	case <-time.After(fakeserver.Guard):
		t.Fatalf("the session did not wait (want %v)", want)
	}
}

// noJitter makes the backoff known: 100, 200, 400ms... (Rand 0.5 of
// [d/2, d) is 3/4 d: 75, 150, 300ms...).
var noJitter = Backoff{Base: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return 0.5 }}

// sessionOn connects a session with credentials to s, playing the login.
func sessionOn(t *testing.T, s *fakeserver.Server, clock *fakeClock, giveUp time.Duration) (*Session, *fakeserver.Conn) {
	t.Helper()
	sess := NewSession(SessionConfig{Addr: s.Addr(), Clock: clock, Backoff: noJitter, User: "alice", Password: "pw", GiveUp: giveUp,
		Options: Options{NoTLS: true}})
	t.Cleanup(func() { sess.Close() })
	done := fakeserver.Async(func() error { return sess.Connect(context.Background(), nil) })
	sc := s.Accept(t)
	playLogin(t, sc)
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	return sess, sc
}

// playLogin answers a client's USER and PASS as 1000 alice.
func playLogin(t *testing.T, sc *fakeserver.Conn) {
	t.Helper()
	cmd := sc.Expect(t, "USER")
	sc.Reply(t, cmd.Tag, "331 password required")
	cmd = sc.Expect(t, "PASS")
	if cmd.Args[0] != "pw" {
		t.Errorf("login again with password %q", cmd.Args[0])
	}
	sc.Reply(t, cmd.Tag, "230 1000 alice")
}

// nextConn returns the next connection event, skipping lines.
func nextConn(t *testing.T, s *Session) ConnEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				t.Fatalf("events closed: %v", s.Err())
			}
			if ev.Conn != nil {
				return *ev.Conn
			}
		case <-time.After(fakeserver.Guard):
			t.Fatal("no connection event")
		}
	}
}

// TestSessionHeals: a lost connection is said once, retried after the
// backoff, logged in again without asking, and the message whose answer
// was lost is sent again as a resend of the same client id.
func TestSessionHeals(t *testing.T) {
	s := fakeserver.New(t, "220 test qchat/1 ready cid")
	clock := newFakeClock()
	sess, sc := sessionOn(t, s, clock, 0)

	p, err := sess.Submit("bob", "one")
	if err != nil {
		t.Fatal(err)
	}
	cmd := sc.Expect(t, "MSG")
	if cmd.ClientID != p.CID || cmd.Resend || cmd.Args[0] != "bob" || cmd.Args[1] != "one" {
		t.Fatalf("first try %+v, want MSG id=%s bob one", cmd, p.CID)
	}
	sc.Close() // no answer: lost with the connection

	if ev := nextConn(t, sess); ev.State != ConnLost || ev.Server != s.Addr() || LostCause(ev.Err) != "the server closed the connection" {
		t.Errorf("first event %+v (%v), want lost: the server closed the connection", ev, ev.Err)
	}
	if ev := nextConn(t, sess); ev.State != ConnReconnecting || ev.Attempt != 1 || ev.Wait != 75*time.Millisecond {
		t.Errorf("then %+v, want reconnecting, attempt 1 in 75ms", ev)
	}
	if _, err := sess.Do(context.Background(), "LIST"); err == nil || !strings.Contains(err.Error(), "not connected to "+s.Addr()) {
		t.Errorf("a request while down: %v, want not connected", err)
	}
	// Typed while down: kept, sent after the one before it.
	p2, _ := sess.Submit("bob", "two")
	clock.next(t, 75*time.Millisecond)

	sc = s.Accept(t)
	playLogin(t, sc)
	cmd = sc.Expect(t, "MSG")
	if cmd.ClientID != p.CID || !cmd.Resend {
		t.Fatalf("after the reconnect %+v, want MSG resend=%s", cmd, p.CID)
	}
	cmd2 := sc.Expect(t, "MSG")
	if cmd2.ClientID != p2.CID || cmd2.Resend || cmd2.Args[1] != "two" {
		t.Fatalf("then %+v, want MSG id=%s bob two", cmd2, p2.CID)
	}
	if ev := nextConn(t, sess); ev.State != ConnBack || ev.Down != 75*time.Millisecond || ev.Resent != 1 {
		t.Errorf("then %+v, want back after 75ms with 1 message sent again", ev)
	}
	sc.Reply(t, cmd.Tag, "250 7 delivered 1001 "+fakeserver.WireTime)
	sc.Reply(t, cmd2.Tag, "250 8 stored 1001 "+fakeserver.WireTime)
	for i, q := range []*Pending{p, p2} {
		fakeserver.Await(t, fakeserver.Async(func() bool { <-q.Done(); return true }))
		if s, err := q.Result(); err != nil || s.ID != int64(7+i) {
			t.Errorf("message %d: %+v, %v", i+1, s, err)
		}
	}
	if sess.Outbox().Len() != 0 {
		t.Errorf("%d messages left in the outbox", sess.Outbox().Len())
	}
	if me := sess.Me(); me != (User{1000, "alice"}) {
		t.Errorf("Me() = %+v", me)
	}
}

// TestSessionBacksOffAndGivesUp: while the server refuses connections the
// attempts come further and further apart; past GiveUp the session ends,
// saying where it could not connect and why, in words.
func TestSessionBacksOffAndGivesUp(t *testing.T) {
	s := fakeserver.New(t, "220 test qchat/1 ready cid")
	clock := newFakeClock()
	sess, sc := sessionOn(t, s, clock, time.Second)
	s.Close()
	sc.Close()
	if ev := nextConn(t, sess); ev.State != ConnLost {
		t.Fatalf("%+v, want lost", ev)
	}
	// 75, 150, 300, 475 (what is left of the second): then it gives up.
	for i, d := range []time.Duration{75, 150, 300, 475} {
		d *= time.Millisecond
		ev := nextConn(t, sess)
		if ev.State != ConnReconnecting || ev.Attempt != i+1 || ev.Wait != d {
			t.Errorf("%+v, want attempt %d in %v", ev, i+1, d)
		}
		if i > 0 && !strings.Contains(ev.Err.Error(), "nothing is listening there") {
			t.Errorf("attempt %d says the one before failed with %v", i+1, ev.Err)
		}
		clock.next(t, d)
	}
	fakeserver.Await(t, fakeserver.Async(func() bool { <-sess.Done(); return true }))
	var gu *GaveUpError
	err := sess.Err()
	if !errors.As(err, &gu) {
		t.Fatalf("Err() = %v, want a GaveUpError", err)
	}
	want := "gave up on " + s.Addr() + " after 1s without a connection: nothing is listening there (connection refused) — " + serverHint
	if err.Error() != want {
		t.Errorf("Err() = %q\nwant    %q", err, want)
	}
}

// TestSessionEndsForGood: a takeover (another login of the account) ends
// the session without a reconnect; so does a password refused on the way
// back.
func TestSessionEndsForGood(t *testing.T) {
	s := fakeserver.New(t, "220 test qchat/1 ready cid")
	clock := newFakeClock()
	sess, sc := sessionOn(t, s, clock, 0)
	sc.Send(t, "BYE takeover logged in from another place")
	sc.Close()
	for ended := false; !ended; {
		select {
		case ev, ok := <-sess.Events():
			ended = !ok
			if ok && ev.Conn != nil {
				t.Fatalf("connection event %+v after a takeover", *ev.Conn)
			}
		case <-time.After(fakeserver.Guard):
			t.Fatal("the session goes on after a takeover")
		}
	}
	var bye *ByeError
	if err := sess.Err(); !errors.As(err, &bye) || bye.Reason != "takeover" || !IsFinal(err) {
		t.Errorf("Err() = %v, want the takeover", err)
	}
	select {
	case w := <-clock.waits:
		t.Errorf("the session waited %v to reconnect after a takeover", w.d)
	default:
	}

	sess, sc = sessionOn(t, s, clock, 0)
	sc.Close()
	nextConn(t, sess) // lost
	nextConn(t, sess) // reconnecting
	clock.next(t, 75*time.Millisecond)
	sc = s.Accept(t)
	cmd := sc.Expect(t, "USER")
	sc.Reply(t, cmd.Tag, "331 password required")
	cmd = sc.Expect(t, "PASS")
	sc.Reply(t, cmd.Tag, "535 login incorrect")
	fakeserver.Await(t, fakeserver.Async(func() bool { <-sess.Done(); return true }))
	if err := sess.Err(); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("Err() = %v, want ErrWrongPassword", err)
	}
}

// TestDialErrorInWords: a refused connection names the address, the
// cause in words and what to check, never Go's dial error with the local
// port (dialed from the peer listener, as chat and recv do).
// TestSessionOlderServer: a server whose greeting does not offer client
// ids gets plain MSG lines.
func TestSessionOlderServer(t *testing.T) {
	s := fakeserver.New(t, fakeserver.Greeting)
	sess, sc := sessionOn(t, s, newFakeClock(), 0)
	p, err := sess.Submit("bob", "hi")
	if err != nil {
		t.Fatal(err)
	}
	cmd := sc.Expect(t, "MSG")
	if cmd.ClientID != "" || cmd.Args[0] != "bob" {
		t.Fatalf("MSG to an older server: %+v", cmd)
	}
	sc.Reply(t, cmd.Tag, "250 7 delivered 1001 "+fakeserver.WireTime)
	fakeserver.Await(t, fakeserver.Async(func() bool { <-p.Done(); return true }))
	if s, err := p.Result(); err != nil || s.ID != 7 {
		t.Errorf("Result() = %+v, %v", s, err)
	}
}

func TestDialErrorInWords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	peer, err := xfer.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	for _, opts := range []Options{{NoTLS: true}, {Peer: peer, NoTLS: true}} {
		_, err := Dial(context.Background(), addr, opts)
		want := "cannot connect to " + addr + ": nothing is listening there (connection refused) — is `qchat serve` running there? is a firewall in the way?"
		if err == nil || err.Error() != want {
			t.Errorf("Dial(%s) error %q\nwant %q", addr, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "dial tcp") || strings.Contains(err.Error(), "->")) {
			t.Errorf("Dial error %q shows Go's dial error", err)
		}
	}
	if _, err := Dial(context.Background(), "localhost", Options{}); err == nil || !strings.Contains(err.Error(), "not a HOST:PORT address") {
		t.Errorf("Dial(localhost) error %v", err)
	}
}

// TestSessionAcksCumulatively: a burst of durable events is acknowledged
// by one ACK ..<last id> once the reader has handled all of it, on a
// server that says ackto; a server that does not gets the ids.
func TestSessionAcksCumulatively(t *testing.T) {
	for _, tc := range []struct {
		greeting string
		want     []string
	}{
		{"220 test qchat/1 ready cid ackto", []string{"ACK ..9"}},
		{"220 test qchat/1 ready cid", []string{"ACK 7", "ACK 8", "ACK 9"}},
	} {
		s := fakeserver.New(t, tc.greeting)
		sess, sc := sessionOn(t, s, newFakeClock(), 0)
		sc.Send(t, "MSG 7 1001 bob "+fakeserver.WireTime+" one", "PRESENCE 1002 carol online",
			"MSG 8 1001 bob "+fakeserver.WireTime+" two", "MSG 9 1001 bob "+fakeserver.WireTime+" three")
		var rec Recorder
		seen := 0
		for seen < 4 {
			select {
			case ev := <-sess.Events():
				if ev.Conn != nil {
					continue
				}
				seen++
				if !IsAckable(ev.Line.Kind) {
					continue
				}
				if seen == 1 {
					// the whole burst is queued for the reader before it
					// handles the first: nothing is acknowledged before
					// the last
					waitFor(t, func() bool { return len(sess.Events()) == 3 })
				}
				m, err := ParseMessage(ev.Line)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := rec.Receive(sess, m, func(Message) {}); err != nil {
					t.Fatal(err)
				}
			case <-time.After(fakeserver.Guard):
				t.Fatal("events did not come")
			}
		}
		for _, want := range tc.want {
			if got := sc.Next(t); got != want {
				t.Errorf("%s: client wrote %q, want %q", tc.greeting, got, want)
			}
		}
		// nothing more was acknowledged: the next line is this PING
		done := fakeserver.Async(func() error { _, err := sess.Do(context.Background(), "PING", "x"); return err })
		cmd := sc.Expect(t, "PING")
		sc.Reply(t, cmd.Tag, "200 pong x")
		if err := fakeserver.Await(t, done); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds (at most guard).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(fakeserver.Guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
	"qchat/xfer"
)

// Transcript tests: the client against a server played by the test over
// a real loopback connection.

func TestDialGreeting(t *testing.T) {
	c, _ := dialFake(t)
	if c.Server() != "test" {
		t.Errorf("Server() = %q, want the name from the greeting", c.Server())
	}
	if c.Err() != nil || c.Me() != (User{}) {
		t.Errorf("fresh connection: Err %v, Me %+v", c.Err(), c.Me())
	}
}

func TestDialRefusesNonQchat(t *testing.T) {
	for _, tc := range []struct {
		greeting string
		want     string
		code     int
	}{
		{"HTTP/1.1 400 Bad Request", "not a qchat server", 0},
		{"SSH-2.0-OpenSSH_9.6", "not a qchat server", 0},
		{"200 hello", "not a qchat server", 0},
		{"421 shutting down", "421", protocol.CodeUnavailable},
		{"\x1b[2J220 evil", "not a qchat server", 0},
	} {
		s := fakeserver.New(t, tc.greeting)
		ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
		c, err := Dial(ctx, s.Addr(), Options{NoTLS: true})
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("greeting %q: Dial worked", tc.greeting)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("greeting %q: error %q, want %q", tc.greeting, err, tc.want)
		}
		if strings.ContainsRune(err.Error(), 0x1b) {
			t.Errorf("greeting %q: error %q holds a raw ESC", tc.greeting, err)
		}
		var pe *protocol.Error
		if tc.code != 0 && (!errors.As(err, &pe) || pe.Code != tc.code) {
			t.Errorf("greeting %q: error %v is not a %d", tc.greeting, err, tc.code)
		}
	}
}

func TestDialServerClosesWithoutGreeting(t *testing.T) {
	s := fakeserver.New(t, "")
	go func() {
		if sc, ok := <-s.Conns(); ok {
			sc.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	if c, err := Dial(ctx, s.Addr(), Options{NoTLS: true}); err == nil {
		c.Close()
		t.Fatal("Dial worked without a greeting")
	} else if !strings.Contains(err.Error(), "no greeting") {
		t.Errorf("error %q", err)
	}
}

func TestLogin(t *testing.T) {
	c, sc := dialFake(t)
	done := fakeserver.Async(func() error {
		u, err := c.Login(context.Background(), "alice", "pass word")
		if err == nil && u != (User{1000, "alice"}) {
			t.Errorf("Login = %+v", u)
		}
		return err
	})
	cmd := sc.Expect(t, "USER")
	if cmd.Tag == "" || !slices.Equal(cmd.Args, []string{"alice"}) {
		t.Errorf("USER request %+v", cmd)
	}
	sc.Reply(t, cmd.Tag, "331 password required")
	cmd = sc.Expect(t, "PASS")
	if cmd.Tag == "" || !slices.Equal(cmd.Args, []string{"pass word"}) {
		t.Errorf("PASS request %+v", cmd)
	}
	sc.Reply(t, cmd.Tag, "230 1000 alice")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	if c.Me() != (User{1000, "alice"}) {
		t.Errorf("Me() = %+v", c.Me())
	}
	c.Rename("alice2")
	if c.Me().Nick != "alice2" {
		t.Errorf("after Rename, Me() = %+v", c.Me())
	}
}

func TestLoginIncorrect(t *testing.T) {
	c, sc := dialFake(t)
	done := fakeserver.Async(func() error { _, err := c.Login(context.Background(), "alice", "wrong"); return err })
	cmd := sc.Expect(t, "USER")
	sc.Reply(t, cmd.Tag, "331 password required")
	cmd = sc.Expect(t, "PASS")
	sc.Reply(t, cmd.Tag, "535 login incorrect")
	err := fakeserver.Await(t, done)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeLoginFailed {
		t.Fatalf("Login error %v, want a 535", err)
	}
	if c.Me() != (User{}) {
		t.Errorf("Me() = %+v after a failed login", c.Me())
	}
}

// Replies are matched to their requests by tag, whatever their order, and
// events and untagged replies in between go to Events, never to a request.
func TestRepliesByTagEventsApart(t *testing.T) {
	c, sc := dialFake(t)
	type result struct {
		r   Reply
		err error
	}
	list := fakeserver.Async(func() result { r, err := c.Do(context.Background(), "LIST"); return result{r, err} })
	l1 := sc.Expect(t, "LIST")
	info := fakeserver.Async(func() result { r, err := c.Do(context.Background(), "INFO", "bob"); return result{r, err} })
	l2 := sc.Expect(t, "INFO")
	if l1.Tag == "" || l2.Tag == "" || l1.Tag == l2.Tag {
		t.Fatalf("tags %q and %q: want two different tags", l1.Tag, l2.Tag)
	}
	// The INFO reply first, interleaved with the LIST reply and events.
	sc.Send(t,
		"@"+l2.Tag+" 211-id 1001",
		"MSG 7 1001 bob "+fakeserver.WireTime+" 210 not a reply",
		"@"+l1.Tag+" 210-1001 bob online",
		"PRESENCE 1002 carol online",
		"@"+l2.Tag+" 211-nick bob",
		"@zzz 200 a reply nobody waits for",
		"421 untagged: the server is going down",
		"@"+l2.Tag+" 211 end",
		"@"+l1.Tag+" 210-1002 carol away out for lunch",
		"@"+l1.Tag+" 210 2 online",
		"NUDGE 1001 bob "+fakeserver.WireTime,
	)
	ri := fakeserver.Await(t, info)
	if ri.err != nil || ri.r.Code != 211 || ri.r.Text != "end" || !slices.Equal(ri.r.Lines, []string{"id 1001", "nick bob"}) {
		t.Errorf("INFO reply %+v, %v", ri.r, ri.err)
	}
	rl := fakeserver.Await(t, list)
	if rl.err != nil || rl.r.Code != 210 || rl.r.Text != "2 online" ||
		!slices.Equal(rl.r.Lines, []string{"1001 bob online", "1002 carol away out for lunch"}) {
		t.Errorf("LIST reply %+v, %v", rl.r, rl.err)
	}
	var kinds []string
	for range 4 {
		l := nextEvent(t, c)
		if l.Tag != "" {
			t.Errorf("a tagged reply %+v came out as an event", l)
		}
		if l.IsEvent() {
			kinds = append(kinds, l.Kind)
		} else {
			kinds = append(kinds, strconv.Itoa(l.Code))
		}
	}
	if !slices.Equal(kinds, []string{"MSG", "PRESENCE", "421", "NUDGE"}) {
		t.Errorf("events %v, want MSG PRESENCE 421 NUDGE in order", kinds)
	}
}

func TestFailureRepliesAreProtocolErrors(t *testing.T) {
	c, sc := dialFake(t)
	done := fakeserver.Async(func() error { _, err := c.Do(context.Background(), "INFO", "nobody"); return err })
	cmd := sc.Expect(t, "INFO")
	sc.Reply(t, cmd.Tag, "550 no such user nobody")
	err := fakeserver.Await(t, done)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != 550 || pe.Text != "no such user nobody" {
		t.Errorf("error %#v, want 550", err)
	}
}

func TestDoRefusesWhatCannotGoOnTheWire(t *testing.T) {
	c, sc := dialFake(t)
	for _, tc := range []struct {
		verb string
		args []string
	}{
		{"INFO", []string{"bob\nQUIT"}},
		{"INFO", []string{"bob smith"}},
		{"INFO", []string{""}},
		{"MSG", []string{"bob", "hi\r\nQUIT"}},
		{"MSG", []string{"bob"}},
		{"NOSUCHVERB", nil},
	} {
		if _, err := c.Do(context.Background(), tc.verb, tc.args...); err == nil {
			t.Errorf("Do(%s %q) worked", tc.verb, tc.args)
		}
	}
	// Nothing of them reached the server: the next line is the PING.
	done := fakeserver.Async(func() error { _, err := c.Do(context.Background(), "PING", "x"); return err })
	cmd := sc.Expect(t, "PING")
	sc.Reply(t, cmd.Tag, "200 pong x")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestPingIsAnsweredNotPassedOn(t *testing.T) {
	c, sc := dialFake(t)
	sc.Send(t, "PING tok123", "PRESENCE 1001 bob online")
	if got := sc.Next(t); got != "PONG tok123" {
		t.Errorf("client answered %q, want PONG tok123", got)
	}
	if l := nextEvent(t, c); l.Kind != "PRESENCE" {
		t.Errorf("first event %+v, want the PRESENCE (PING is not an event)", l)
	}
}

func TestSkipsLinesItCannotRead(t *testing.T) {
	c, sc := dialFake(t)
	sc.Send(t,
		"@bad!tag 200 x",
		"not an event",
		"PING",
		"MSG 7",
		"\xff\xfe",
		strings.Repeat("x", protocol.MaxLine+10),
		"PRESENCE 1001 bob online",
	)
	if l := nextEvent(t, c); l.Kind != "PRESENCE" {
		t.Errorf("event %+v, want the PRESENCE after the unreadable lines", l)
	}
	if c.Err() != nil {
		t.Errorf("connection ended: %v", c.Err())
	}
}

func TestByeEndsTheConnection(t *testing.T) {
	c, sc := dialFake(t)
	pending := fakeserver.Async(func() error { _, err := c.Do(context.Background(), "LIST"); return err })
	sc.Expect(t, "LIST")
	sc.Send(t, "BYE takeover logged in from another place")
	sc.Close()
	l := nextEvent(t, c)
	if l.Kind != "BYE" || l.Args[0] != "takeover" {
		t.Errorf("event %+v, want the BYE", l)
	}
	if err := fakeserver.Await(t, pending); err == nil {
		t.Error("the pending request got no error")
	}
	select {
	case _, ok := <-c.Events():
		if ok {
			t.Error("more events after BYE")
		}
	case <-time.After(fakeserver.Guard):
		t.Fatal("event stream not closed")
	}
	<-c.Done()
	if err := c.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "logged in from another place") {
		t.Errorf("Err() = %v, want ErrClosed with the BYE's text", err)
	}
	if _, err := c.Do(context.Background(), "LIST"); err == nil {
		t.Error("Do worked on a closed connection")
	}
}

// A reply that comes after its request gave up is dropped: it is neither
// taken for the next request's reply nor passed on as an event.
func TestLateReplyIsDropped(t *testing.T) {
	c, sc := dialFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := fakeserver.Async(func() error { _, err := c.Do(ctx, "INFO", "bob"); return err })
	old := sc.Expect(t, "INFO")
	cancel()
	if err := fakeserver.Await(t, first); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Do: %v", err)
	}
	second := fakeserver.Async(func() string { r, _ := c.Do(context.Background(), "PING", "p"); return r.Text })
	cmd := sc.Expect(t, "PING")
	sc.Send(t, "@"+old.Tag+" 211 end", "PRESENCE 1001 bob online")
	sc.Reply(t, cmd.Tag, "200 pong p")
	if got := fakeserver.Await(t, second); got != "pong p" {
		t.Errorf("PING reply %q", got)
	}
	if l := nextEvent(t, c); l.Kind != "PRESENCE" {
		t.Errorf("event %+v, want the PRESENCE", l)
	}
}

func TestDoTimesOut(t *testing.T) {
	c, sc := dialFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := fakeserver.Async(func() error { _, err := c.Do(ctx, "LIST"); return err })
	sc.Expect(t, "LIST")
	if err := fakeserver.Await(t, done); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("error %v, want no answer in time", err)
	}
}

func TestSend(t *testing.T) {
	c, sc := dialFake(t)
	loginFake(t, c, sc)
	type result struct {
		s   Sent
		err error
	}
	for _, tc := range []struct {
		to, text, reply string
		want            Sent
	}{
		{"bob", "hello  there", "250 7 stored 1001 " + fakeserver.WireTime, Sent{ID: 7, Status: "stored", To: 1001}},
		{"1001", ansi, "250 8 delivered 1001 " + fakeserver.WireTime, Sent{ID: 8, Status: "delivered", To: 1001}},
		{"#dev", "to the group", "250 9 delivered #dev " + fakeserver.WireTime, Sent{ID: 9, Status: "delivered", Group: "#dev"}},
	} {
		done := fakeserver.Async(func() result { s, err := c.Send(context.Background(), tc.to, tc.text); return result{s, err} })
		cmd := sc.Expect(t, "MSG")
		if !slices.Equal(cmd.Args, []string{tc.to, tc.text}) {
			t.Errorf("MSG args %q, want %q", cmd.Args, []string{tc.to, tc.text})
		}
		sc.Reply(t, cmd.Tag, tc.reply)
		r := fakeserver.Await(t, done)
		r.s.Time = time.Time{}
		if r.err != nil || r.s != tc.want {
			t.Errorf("Send(%q) = %+v, %v; want %+v", tc.to, r.s, r.err, tc.want)
		}
	}
	// Refused before the wire.
	for _, tc := range []struct{ to, text string }{
		{"bob", ""},
		{"bob", "two\nlines"},
		{"bob", "cr\r"},
		{"bob", "nul\x00"},
		{"bob", "\xff"},
		{"bob", strings.Repeat("x", protocol.MaxText+1)},
		{"bob smith", "hi"},
		{"bob", " leading space"},
	} {
		if s, err := c.Send(context.Background(), tc.to, tc.text); err == nil {
			t.Errorf("Send(%q, %.20q) = %+v, want an error", tc.to, tc.text, s)
		}
	}
	// A message of exactly the limit goes.
	text := strings.Repeat("é", protocol.MaxText/2)
	done := fakeserver.Async(func() error { _, err := c.Send(context.Background(), "bob", text); return err })
	cmd := sc.Expect(t, "MSG")
	if cmd.Args[1] != text {
		t.Error("the longest text arrived changed")
	}
	sc.Reply(t, cmd.Tag, "552 text too long")
	if err := fakeserver.Await(t, done); err == nil {
		t.Error("a 552 reply gave no error")
	}
	// A reply that is no 250 text is an error, not a zero Sent.
	done = fakeserver.Async(func() error { _, err := c.Send(context.Background(), "bob", "x"); return err })
	cmd = sc.Expect(t, "MSG")
	sc.Reply(t, cmd.Tag, "250 ok")
	if err := fakeserver.Await(t, done); err == nil {
		t.Error("a malformed 250 gave no error")
	}
}

func TestSendAsync(t *testing.T) {
	c, sc := dialFake(t)
	type result struct {
		s   Sent
		err error
	}
	ch := make(chan result, 2)
	if err := c.SendAsync("bob", "one", func(s Sent, err error) { ch <- result{s, err} }); err != nil {
		t.Fatal(err)
	}
	if err := c.SendAsync("bob", "two", func(s Sent, err error) { ch <- result{s, err} }); err != nil {
		t.Fatal(err)
	}
	one, two := sc.Expect(t, "MSG"), sc.Expect(t, "MSG")
	sc.Reply(t, two.Tag, "450 bob's queue is full")
	sc.Reply(t, one.Tag, "250 7 stored 1001 "+fakeserver.WireTime)
	r2, r1 := fakeserver.Await(t, ch), fakeserver.Await(t, ch)
	if r2.err == nil || r1.err != nil || r1.s.ID != 7 {
		t.Errorf("results %+v, %+v: want the 450 first, then 250 7", r2, r1)
	}
}

func TestAckLines(t *testing.T) {
	c, sc := dialFake(t)
	if err := c.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(7); err != nil {
		t.Fatal(err)
	}
	if got := sc.Next(t); got != "ACK 7" {
		t.Errorf("wrote %q, want ACK 7", got)
	}
	ids := make([]int64, 1025)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	if err := c.Ack(ids...); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for range 3 {
		cmd := sc.Expect(t, "ACK")
		if cmd.Tag != "" {
			t.Errorf("ACK with a tag %q: it has no reply", cmd.Tag)
		}
		parts := strings.Split(cmd.Args[0], ",")
		if len(parts) > 1024 {
			t.Errorf("one ACK of %d ids; the limit is 1024", len(parts))
		}
		for _, p := range parts {
			id, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				t.Fatalf("ACK %q", cmd.Args[0])
			}
			got = append(got, id)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("acknowledged %d ids, want 1..1025 in order", len(got))
	}
}

func TestUsersAndInfo(t *testing.T) {
	c, sc := dialFake(t)
	done := fakeserver.Async(func() []Presence {
		ps, err := c.List(context.Background())
		if err != nil {
			t.Error(err)
		}
		return ps
	})
	cmd := sc.Expect(t, "LIST")
	sc.Reply(t, cmd.Tag,
		"210-1001 bob online",
		"210-1002 carol away out for  lunch",
		"210-garbage",
		"210-bob 1003 online",
		"210-1004 dave",
		"210 2 online")
	want := []Presence{
		{User: User{1001, "bob"}, State: "online"},
		{User: User{1002, "carol"}, State: "away", Status: "out for  lunch"},
	}
	if got := fakeserver.Await(t, done); !slices.Equal(got, want) {
		t.Errorf("List = %+v, want %+v", got, want)
	}
	info := fakeserver.Async(func() [][2]string {
		kv, err := c.Info(context.Background(), "bob")
		if err != nil {
			t.Error(err)
		}
		return kv
	})
	cmd = sc.Expect(t, "INFO")
	sc.Reply(t, cmd.Tag, "211-id 1001", "211-nick bob", "211-status at work today", "211-friend", "211 end")
	wantKV := [][2]string{{"id", "1001"}, {"nick", "bob"}, {"status", "at work today"}, {"friend", ""}}
	if got := fakeserver.Await(t, info); !slices.Equal(got, wantKV) {
		t.Errorf("Info = %q, want %q", got, wantKV)
	}
}

func TestRegisterChecksFirst(t *testing.T) {
	c, sc := dialFake(t)
	for _, tc := range []struct{ nick, pw string }{
		{"1234", "pw"},
		{"evil\x1b[31m", "pw"},
		{"bob smith", "pw"},
		{"bob", ""},
		{"bob", " pw"},
		{"bob", strings.Repeat("p", 73)},
	} {
		if _, err := c.Register(context.Background(), tc.nick, tc.pw); err == nil {
			t.Errorf("Register(%q, %q) worked", tc.nick, tc.pw)
		}
	}
	done := fakeserver.Async(func() User {
		u, err := c.Register(context.Background(), "小明", "a b")
		if err != nil {
			t.Error(err)
		}
		return u
	})
	cmd := sc.Expect(t, "REG")
	if !slices.Equal(cmd.Args, []string{"小明", "a b"}) {
		t.Errorf("REG args %q", cmd.Args)
	}
	sc.Reply(t, cmd.Tag, "201 1003 小明")
	if u := fakeserver.Await(t, done); u != (User{1003, "小明"}) {
		t.Errorf("Register = %+v", u)
	}
	if c.Me() != (User{}) {
		t.Error("REG logged in")
	}
}

func TestOfferChat(t *testing.T) {
	c, sc := dialFake(t)
	type result struct {
		t   xfer.Ticket
		err error
	}
	done := fakeserver.Async(func() result { tk, err := c.Offer(context.Background(), "bob", "chat", nil); return result{tk, err} })
	cmd := sc.Expect(t, "CHAT")
	if !slices.Equal(cmd.Args, []string{"bob"}) || cmd.Tag == "" {
		t.Errorf("CHAT request %+v", cmd)
	}
	// The ticket comes once the other side answers; events may come before.
	sc.Send(t, "PRESENCE 1001 bob away")
	sc.Reply(t, cmd.Tag, "260 3kq7xw2m0a9d5f1h8j4n6p2r0t 1001 192.0.2.7:5000 2026-11-22T10:02:00.000Z SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk s3cr3t")
	r := fakeserver.Await(t, done)
	want := xfer.Ticket{ID: "3kq7xw2m0a9d5f1h8j4n6p2r0t", Purpose: "chat", Peer: 1001, PeerAddr: "192.0.2.7:5000",
		Expires: time.Date(2026, 11, 22, 10, 2, 0, 0, time.UTC), Offerer: true}
	if r.err != nil || r.t.ID != want.ID || r.t.Purpose != want.Purpose || r.t.Peer != want.Peer ||
		r.t.PeerAddr != want.PeerAddr || !r.t.Expires.Equal(want.Expires) || !r.t.Offerer {
		t.Errorf("Offer = %+v, %v; want %+v", r.t, r.err, want)
	}
	if l := nextEvent(t, c); l.Kind != "PRESENCE" {
		t.Errorf("event %+v", l)
	}

	for _, tc := range []struct {
		reply string
		code  int
	}{
		{"551 refused by bob", protocol.CodeRefused},
		{"454 bob did not answer in time", protocol.CodeTimeout},
		{"453 1001 is not online", protocol.CodeOffline},
		{"260 garbage", 0},
	} {
		done := fakeserver.Async(func() result { tk, err := c.Offer(context.Background(), "bob", "chat", nil); return result{tk, err} })
		cmd := sc.Expect(t, "CHAT")
		sc.Reply(t, cmd.Tag, tc.reply)
		r := fakeserver.Await(t, done)
		if r.err == nil {
			t.Errorf("reply %q: no error", tc.reply)
			continue
		}
		var pe *protocol.Error
		if tc.code != 0 && (!errors.As(r.err, &pe) || pe.Code != tc.code) {
			t.Errorf("reply %q: error %v, want code %d", tc.reply, r.err, tc.code)
		}
	}
}

func TestOfferFileSummary(t *testing.T) {
	dir := t.TempDir()
	album := filepath.Join(dir, "album")
	if err := os.Mkdir(album, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"a.jpg": 1000, "b.jpg": 24} {
		if err := os.WriteFile(filepath.Join(album, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	evil := filepath.Join(dir, "\x1b[31mevil\u202egpj.exe")
	if err := os.WriteFile(evil, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, sc := dialFake(t)
	for _, tc := range []struct {
		paths []string
		args  []string
	}{
		{[]string{album}, []string{"bob", "2", "1024", "album/"}},
		{[]string{evil}, []string{"bob", "1", "1", `\x1b[31mevil\u202egpj.exe`}},
		{[]string{album, evil}, []string{"bob", "3", "1025", "3 files"}},
	} {
		o, err := xfer.NewOffer(tc.paths...)
		if err != nil {
			t.Fatal(err)
		}
		done := fakeserver.Async(func() error { _, err := c.Offer(context.Background(), "bob", "file", o); return err })
		raw := sc.Next(t)
		if fakeserver.TerminalUnsafe(raw) != "" {
			t.Errorf("FILE line %q holds control characters", raw)
		}
		cmd, err := protocol.ParseCommand([]byte(raw))
		if err != nil || cmd.Verb != "FILE" || !slices.Equal(cmd.Args, tc.args) {
			t.Errorf("wrote %q (%v), want FILE %q", raw, err, tc.args)
		}
		sc.Reply(t, cmd.Tag, "551 refused")
		if err := fakeserver.Await(t, done); err == nil {
			t.Error("a refused offer gave no error")
		}
	}
}

func TestAnswer(t *testing.T) {
	c, sc := dialFake(t)
	o := OfferEvent{Ticket: "3kq7xw2m0a9d5f1h8j4n6p2r0t", From: 1001, FromNick: "bob", Purpose: "file", Count: 1, Bytes: 10, Name: "a.txt"}
	type result struct {
		t   xfer.Ticket
		err error
	}
	done := fakeserver.Async(func() result { tk, err := c.Answer(context.Background(), true, o); return result{tk, err} })
	cmd := sc.Expect(t, "ACCEPT")
	if !slices.Equal(cmd.Args, []string{"file", o.Ticket}) {
		t.Errorf("ACCEPT args %q", cmd.Args)
	}
	sc.Reply(t, cmd.Tag, "260 "+o.Ticket+" 1001 192.0.2.7:5000 2026-11-22T10:02:00.000Z SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk s3cr3t")
	r := fakeserver.Await(t, done)
	if r.err != nil || r.t.ID != o.Ticket || r.t.Peer != 1001 || r.t.Purpose != "file" || r.t.Offerer {
		t.Errorf("Answer(accept) = %+v, %v", r.t, r.err)
	}

	o.Purpose = "chat"
	done = fakeserver.Async(func() result { tk, err := c.Answer(context.Background(), false, o); return result{tk, err} })
	cmd = sc.Expect(t, "REJECT")
	if !slices.Equal(cmd.Args, []string{"chat", o.Ticket}) {
		t.Errorf("REJECT args %q", cmd.Args)
	}
	sc.Reply(t, cmd.Tag, "200 refused the chat from 1001")
	if r := fakeserver.Await(t, done); r.err != nil || r.t.ID != "" {
		t.Errorf("Answer(reject) = %+v, %v", r.t, r.err)
	}

	done = fakeserver.Async(func() result { tk, err := c.Answer(context.Background(), true, o); return result{tk, err} })
	cmd = sc.Expect(t, "ACCEPT")
	sc.Reply(t, cmd.Tag, "503 no such offer waits for you")
	if r := fakeserver.Await(t, done); r.err == nil {
		t.Error("a 503 gave no error")
	}
	// A hostile ticket cannot smuggle a second request onto the line.
	o.Ticket = "t\nQUIT"
	if _, err := c.Answer(context.Background(), true, o); err == nil {
		t.Error("Answer sent a ticket holding a line feed")
	}
}

func TestQuit(t *testing.T) {
	c, sc := dialFake(t)
	done := fakeserver.Async(func() error { return c.Quit(context.Background()) })
	cmd := sc.Expect(t, "QUIT")
	sc.Reply(t, cmd.Tag, "221 bye")
	sc.EOF(t) // the client hangs up itself
	if err := fakeserver.Await(t, done); err != nil {
		t.Errorf("Quit: %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v after Quit", c.Err())
	}
}

func TestCloseEndsEvents(t *testing.T) {
	c, sc := dialFake(t)
	c.Close()
	sc.EOF(t)
	select {
	case _, ok := <-c.Events():
		if ok {
			t.Error("an event after Close")
		}
	case <-time.After(fakeserver.Guard):
		t.Fatal("Events not closed by Close")
	}
	if _, err := c.Do(context.Background(), "LIST"); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
}

// A silent server is pinged; one that does not answer is given up, and
// the event stream ends with why.
func TestKeepalive(t *testing.T) {
	s := fakeserver.New(t, fakeserver.Greeting)
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	c, err := Dial(ctx, s.Addr(), Options{PingInterval: 40 * time.Millisecond, NoTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := s.Accept(t)
	cmd := sc.Expect(t, "PING")
	if !slices.Equal(cmd.Args, []string{"keepalive"}) || cmd.Tag == "" {
		t.Errorf("keepalive request %+v", cmd)
	}
	sc.Reply(t, cmd.Tag, "200 pong keepalive")
	sc.Expect(t, "PING") // silent again: pinged again; this one is not answered
	select {
	case <-c.Done():
	case <-time.After(fakeserver.Guard):
		t.Fatal("a server that does not answer was not given up")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "server not answering") {
		t.Errorf("Err() = %v", err)
	}
}

func TestSendFilesRetriesUnderTheSameName(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o, err := xfer.NewOffer(filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	c, sc := dialFake(t) // no peer listener: every link fails
	var notes []string
	type result struct {
		r   xfer.SendResult
		err error
	}
	done := fakeserver.Async(func() result {
		r, err := c.SendFiles(context.Background(), "bob", o, TransferOptions{Retries: 1, Note: func(s string) { notes = append(notes, s) }}, nil)
		return result{r, err}
	})
	first := sc.Expect(t, "FILE")
	sc.Reply(t, first.Tag, "260 tk1 1001 192.0.2.7:5000 2026-11-22T10:02:00.000Z SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk s3cr3t")
	second := sc.Expect(t, "FILE")
	if !slices.Equal(first.Args, []string{"bob", "2", "10", "2 files"}) || !slices.Equal(second.Args, first.Args) {
		t.Errorf("offers %q then %q, want the same offer twice", first.Args, second.Args)
	}
	sc.Reply(t, second.Tag, "551 refused by bob")
	r := fakeserver.Await(t, done)
	var pe *protocol.Error
	if !errors.As(r.err, &pe) || pe.Code != protocol.CodeRefused {
		t.Errorf("SendFiles error %v, want the refusal", r.err)
	}
	if len(r.r.Files) != 2 || r.r.Files[0].Name != "a.txt" || r.r.Files[0].Err == nil || r.r.Files[1].Err == nil {
		t.Errorf("results %+v, want both files not sent", r.r.Files)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "retrying") || !strings.Contains(notes[0], "no peer listener") {
		t.Errorf("notes %q", notes)
	}
}

func TestSendFilesStopsWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := xfer.NewOffer(filepath.Join(dir, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	c, sc := dialFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := fakeserver.Async(func() error {
		// cancelled as the retry is announced: it must not wait out its backoff
		_, err := c.SendFiles(ctx, "bob", o, TransferOptions{Note: func(string) { cancel() }}, nil)
		return err
	})
	cmd := sc.Expect(t, "FILE")
	sc.Reply(t, cmd.Tag, "260 tk1 1001 192.0.2.7:5000 2026-11-22T10:02:00.000Z SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk s3cr3t")
	if err := fakeserver.Await(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("SendFiles = %v, want context.Canceled", err)
	}
}

package serve

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/modes/internal/fakeserver"
	"qchat/modes/serve/limits"
	"qchat/protocol"
)

// Tests of the abuse limits and fairness shares, each played as an
// attacker would on loopback, against an in-process server. Loopback is
// 127.0.0.0/8 on Linux: a test dials from 127.0.0.2, 127.0.0.3... to be
// several source addresses. The limits themselves are tested with a fake
// clock in package limits; here the server waits for real, with limits
// small enough that no test waits long.

// limitServer starts a test server with edit applied to its config; it is
// shut down when the test ends.
func limitServer(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	srv := startLimitServer(t, edit)
	t.Cleanup(srv.Shutdown)
	return srv
}

// startLimitServer is limitServer for a test that shuts it down itself.
func startLimitServer(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	cfg := Defaults()
	cfg.Listen, cfg.Data, cfg.Name = "127.0.0.1:0", t.TempDir(), "test"
	cfg.HashCost, cfg.Sync, cfg.AckGrace = bcrypt.MinCost, "normal", time.Hour
	cfg.Log = testLogger()
	if edit != nil {
		edit(&cfg)
	}
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return srv
}

// connect dials srv from the local address from and returns the client
// and the first line the server sent (the greeting, or a refusal).
func connect(t *testing.T, srv *Server, name, from string) (*client, protocol.Line) {
	t.Helper()
	d := net.Dialer{Timeout: ioWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatalf("%s: dial from %s: %v", name, from, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, name: name, conn: conn, rd: bufio.NewReader(conn)}
	return c, c.next()
}

// dialFrom is dial from a local address: it wants the greeting.
func dialFrom(t *testing.T, srv *Server, name, from string) *client {
	t.Helper()
	c, l := connect(t, srv, name, from)
	if l.Code != protocol.CodeGreeting {
		t.Fatalf("%s from %s: got %d %s, want the greeting", name, from, l.Code, l.Text)
	}
	return c
}

// bye reads until the server's BYE and returns its reason, skipping and
// returning the replies before it.
func (c *client) bye() (reason string, before []protocol.Line) {
	c.t.Helper()
	for {
		l := c.next()
		if l.Kind == "BYE" {
			return l.Args[0], before
		}
		before = append(before, l)
	}
}

// pipeline writes lines in one write, as a flooding client would.
func (c *client) pipeline(lines []string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := c.conn.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		c.t.Fatalf("%s: pipeline: %v", c.name, err)
	}
}

// noReplyYet reports whether nothing at all has arrived on c: a short read
// that can only miss a late reply, never invent one.
func (c *client) noReplyYet() bool {
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.rd.Peek(1)
	return err != nil
}

func TestLoginUnknownUserSameWork(t *testing.T) {
	var mu sync.Mutex
	var costs []int
	orig := comparePassword
	comparePassword = func(hash, pw []byte) error {
		c, err := bcrypt.Cost(hash)
		if err != nil {
			t.Errorf("compared against a bad hash: %v", err)
		}
		mu.Lock()
		costs = append(costs, c)
		mu.Unlock()
		return orig(hash, pw)
	}
	t.Cleanup(func() { comparePassword = orig })
	const cost = bcrypt.MinCost + 2 // not the old dummy's MinCost
	srv := limitServer(t, func(c *Config) { c.HashCost = cost })
	a := dial(t, srv, "a")
	register(a, "alice", "right")
	a.want("USER alice", protocol.CodePassword)
	wrong := a.want("PASS wrong", protocol.CodeLoginFailed)
	a.want("USER nobody", protocol.CodePassword)
	unknown := a.want("PASS wrong", protocol.CodeLoginFailed)
	if wrong.Text != unknown.Text {
		t.Errorf("wrong password %q, unknown user %q: the replies differ", wrong.Text, unknown.Text)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(costs) != 2 || costs[0] != cost || costs[1] != cost {
		t.Fatalf("bcrypt comparisons (cost of each): %v; want [%d %d]: one each, of the configured cost", costs, cost, cost)
	}
}

func TestLoginGuessingDelayedThenLockedOut(t *testing.T) {
	srv := limitServer(t, func(c *Config) {
		c.Limits.LoginFree, c.Limits.LoginLockout = 2, 4
		c.Limits.LoginDelay, c.Limits.LoginMaxDelay = time.Millisecond, 2*time.Millisecond
	})
	r := dial(t, srv, "reg")
	register(r, "alice", "right")
	for _, who := range []string{"alice", "nobody"} { // the same for a user that does not exist
		g := dialFrom(t, srv, "guess1", "127.0.0.1")
		for range 3 {
			g.want("USER "+who, protocol.CodePassword)
			g.want("PASS guess", protocol.CodeLoginFailed)
		}
		if reason, _ := g.bye(); reason != reasonAuthFailures {
			t.Fatalf("%s: after 3 failures on one connection: BYE %s", who, reason)
		}
		g = dialFrom(t, srv, "guess2", "127.0.0.1")
		g.want("USER "+who, protocol.CodePassword)
		g.want("PASS guess", protocol.CodeLoginFailed) // the 4th
		g.want("USER "+who, protocol.CodePassword)
		l := g.do("PASS right")
		if l.Code != protocol.CodeRateLimit || !strings.Contains(l.Text, "too many failed logins") {
			t.Fatalf("%s: 5th attempt (the right password for alice): %d %s; want 452 too many failed logins", who, l.Code, l.Text)
		}
		if reason, _ := g.bye(); reason != reasonLoginLocked {
			t.Fatalf("%s: BYE %s, want %s", who, reason, reasonLoginLocked)
		}
	}
	// Locked out from that address, even with the right password...
	g := dialFrom(t, srv, "guess3", "127.0.0.1")
	g.want("USER alice", protocol.CodePassword)
	g.want("PASS right", protocol.CodeRateLimit)
	// ...while alice logs in from her own address.
	a := dialFrom(t, srv, "alice", "127.0.0.2")
	a.login("alice", "right")
}

func TestLoginDelayHoldsOnlyTheGuesser(t *testing.T) {
	srv := limitServer(t, func(c *Config) {
		c.Limits.LoginFree = 1
		c.Limits.LoginDelay, c.Limits.LoginMaxDelay, c.Limits.LoginMaxWait = time.Hour, time.Hour, 2*time.Hour
	})
	r := dial(t, srv, "reg")
	aliceID := register(r, "alice", "right")
	register(r, "bob", "pw")
	g := dialFrom(t, srv, "guesser", "127.0.0.1")
	g.want("USER alice", protocol.CodePassword)
	g.want("PASS guess1", protocol.CodeLoginFailed)
	g.send("USER alice")
	g.send("@held PASS guess2") // waits an hour on its own read loop
	// Everyone else goes on: bob, from the same address too, logs in and
	// sends; alice logs in from elsewhere.
	b := dialFrom(t, srv, "bob", "127.0.0.1")
	b.login("bob", "pw")
	a := dialFrom(t, srv, "alice", "127.0.0.2")
	a.login("alice", "right")
	a.want("PING", protocol.CodeOK) // her mailbox is attached once PASS is done
	b.send("@m MSG alice hi")
	m := a.nextMsg()
	a.send("ACK " + strconv.FormatInt(m.id, 10))
	sent(t, b.waitFor("the 250", func(l protocol.Line) bool { return l.Tag == "m" }), "delivered", aliceID)
	if l := g.next(); l.Code != protocol.CodePassword {
		t.Fatalf("guesser: %+v, want the 331 to its USER", l)
	}
	if !g.noReplyYet() {
		t.Fatal("the guesser's second password was answered at once")
	}
}

func TestRegistrationLimits(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Limits.RegPerAddr, c.Limits.RegPerMinute = 2, 3 })
	c := dialFrom(t, srv, "c1", "127.0.0.1")
	register(c, "a1", "pw")
	register(c, "a2", "pw")
	l := c.do("REG a3 pw")
	if l.Code != protocol.CodeRateLimit || !strings.Contains(l.Text, "from your address") {
		t.Fatalf("3rd registration from one address: %d %s", l.Code, l.Text)
	}
	if reason, _ := c.bye(); reason != reasonRegLimit {
		t.Fatalf("BYE %s, want %s", reason, reasonRegLimit)
	}
	d := dialFrom(t, srv, "c2", "127.0.0.2")
	register(d, "b1", "pw")
	l = d.do("REG b2 pw")
	if l.Code != protocol.CodeRateLimit || !strings.Contains(l.Text, "on this server") {
		t.Fatalf("4th registration in a minute: %d %s", l.Code, l.Text)
	}
	// The accounts made work, from the refused address too.
	dialFrom(t, srv, "a1", "127.0.0.1").login("a1", "pw")
}

func TestUnauthenticatedConnectionLimits(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Limits.MaxUnauthPerAddr, c.Limits.MaxUnauth = 3, 5 })
	refused := func(from, reason string) {
		t.Helper()
		c, l := connect(t, srv, "extra", from)
		if l.Code != protocol.CodeUnavailable {
			t.Fatalf("connection from %s: %d %s, want 421", from, l.Code, l.Text)
		}
		if got, _ := c.bye(); got != reason {
			t.Fatalf("connection from %s: BYE %s, want %s", from, got, reason)
		}
	}
	evicted := func(c *client) {
		t.Helper()
		if got, _ := c.bye(); got != reasonUnauth {
			t.Fatalf("%s: BYE %s, want %s (the oldest evicted)", c.name, got, reasonUnauth)
		}
	}
	var ones []*client
	for range 3 {
		ones = append(ones, dialFrom(t, srv, "one", "127.0.0.1"))
	}
	refused("127.0.0.1", reasonUnauthAddr) // one address: the new one is refused
	dialFrom(t, srv, "two", "127.0.0.2")
	dialFrom(t, srv, "two", "127.0.0.2")
	// Full in all: the oldest (ones[0]) makes room for the new one.
	three := dialFrom(t, srv, "three", "127.0.0.3")
	evicted(ones[0])
	// Logging in gives the place back; so does leaving.
	register(ones[1], "alice", "pw")
	ones[1].login("alice", "pw")
	dialFrom(t, srv, "four", "127.0.0.4") // room: nobody evicted
	ones[2].want("QUIT", protocol.CodeBye)
	waitUntil(t, "the closed connection's place is free", func() bool {
		_, n := srv.lim.conns.Count("127.0.0.1")
		return n == 4
	})
	dialFrom(t, srv, "five", "127.0.0.5")
	three.want("PING x", protocol.CodeOK) // still there: others were older
	dialFrom(t, srv, "six", "127.0.0.6")  // full again: the oldest, a "two", goes
	three.want("PING x", protocol.CodeOK)
	ones[1].want("PING x", protocol.CodeOK) // logged in: never evicted
}

func TestConnectionFloodDoesNotDelayLogin(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Limits.MaxUnauthPerAddr = 4 })
	r := dialFrom(t, srv, "reg", "127.0.0.2")
	register(r, "alice", "pw")
	done := make(chan [2]int)
	go func() { // 300 connections from one address, held open
		var greeted, refused int
		var conns []net.Conn
		d := net.Dialer{Timeout: ioWait, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
		for range 300 {
			conn, err := d.Dial("tcp", srv.Addr().String())
			if err != nil {
				break
			}
			conns = append(conns, conn)
			conn.SetReadDeadline(time.Now().Add(ioWait))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			switch {
			case strings.HasPrefix(line, "220 "):
				greeted++
			case strings.HasPrefix(line, "421 "):
				refused++
			}
		}
		for _, c := range conns {
			c.Close()
		}
		done <- [2]int{greeted, refused}
	}()
	a := dialFrom(t, srv, "alice", "127.0.0.3")
	a.login("alice", "pw")
	got := <-done
	if got[0] != 4 || got[1] != 296 {
		t.Fatalf("flood of 300: %d greeted, %d refused; want 4 and 296", got[0], got[1])
	}
}

// waitUntil polls cond: a guard against a hang, never a timing assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, ioWait)
		}
		<-tick.C
	}
}

func TestFloodIsSlowedThenCut(t *testing.T) {
	const rate, burst = 200, 20
	flood := 300 * time.Millisecond
	srv := limitServer(t, func(c *Config) { c.Limits.MsgRate, c.Limits.MsgBurst, c.Limits.FloodAfter = rate, burst, flood })
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	bobID := register(r, "bob", "pw")
	register(r, "carol", "pw")
	a := dialFrom(t, srv, "alice", "127.0.0.2")
	a.login("alice", "pw")
	lines := make([]string, 2000)
	for i := range lines {
		lines[i] = "MSG bob flood " + strconv.Itoa(i)
	}
	start := time.Now()
	a.pipeline(lines)
	reason, before := a.bye()
	held := time.Since(start)
	if reason != reasonFlood {
		t.Fatalf("BYE %s, want %s", reason, reasonFlood)
	}
	accepted := 0
	for _, l := range before {
		switch {
		case l.Code == protocol.CodeSent:
			accepted++
		case l.Code == protocol.CodeRateLimit && strings.Contains(l.Text, "flooding"):
		default:
			t.Fatalf("alice got %d %s", l.Code, l.Text)
		}
	}
	// The pacer never lets more through than the burst and the rate over
	// the time it held alice back: the flood period and one wait, or
	// longer on a loaded machine (measured, not assumed: this is no timed
	// test).
	if most := burst + int(rate*max(held, flood+50*time.Millisecond).Seconds()); accepted <= burst || accepted > most {
		t.Fatalf("%d of 2000 flooded messages accepted; want more than the burst (%d), at most %d", accepted, burst, most)
	}
	// bob is still reachable by everyone else.
	c := dialFrom(t, srv, "carol", "127.0.0.3")
	c.login("carol", "pw")
	sent(t, c.do("MSG bob still there?"), "stored", bobID)
}

// TestPatientSenderIsPacedNotCut: a sender that waits for each answer
// before the next message (a piped chat) is slowed to the rate past its
// burst, for longer than the flood period, and never cut off.
func TestPatientSenderIsPacedNotCut(t *testing.T) {
	const rate, burst, n = 200, 20, 150 // (150-20)/200 = 0.65 s held back
	flood := 300 * time.Millisecond
	srv := limitServer(t, func(c *Config) { c.Limits.MsgRate, c.Limits.MsgBurst, c.Limits.FloodAfter = rate, burst, flood })
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	bobID := register(r, "bob", "pw")
	a := dialFrom(t, srv, "alice", "127.0.0.2")
	a.login("alice", "pw")
	start := time.Now()
	for i := range n {
		sent(t, a.do("MSG bob patient "+strconv.Itoa(i)), "stored", bobID)
	}
	if held := time.Since(start); held < flood {
		t.Fatalf("%d messages past a burst of %d went through in %v: not paced", n, burst, held)
	}
}

func TestGroupPostCostsItsCopies(t *testing.T) {
	const members, rate, burst = 21, 100, 100
	flood := time.Second
	srv := limitServer(t, func(c *Config) {
		c.Limits.MsgRate, c.Limits.MsgBurst, c.Limits.FloodAfter = rate, burst, flood
		c.Limits.RegPerAddr, c.Limits.RegPerMinute = 0, 0
	})
	a := dial(t, srv, "alice")
	register(a, "alice", "pw")
	a.login("alice", "pw")
	a.want("CREATE #big", protocol.CodeOK)
	for i := 1; i < members; i++ {
		m := dial(t, srv, "m")
		nick := "m" + strconv.Itoa(i)
		register(m, nick, "pw")
		m.login(nick, "pw")
		m.want("JOIN #big", protocol.CodeOK)
		m.want("QUIT", protocol.CodeBye)
	}
	lines := make([]string, 200)
	for i := range lines {
		lines[i] = "MSG #big post " + strconv.Itoa(i)
	}
	start := time.Now()
	a.pipeline(lines)
	reason, before := a.bye()
	held := time.Since(start)
	if reason != reasonFlood {
		t.Fatalf("BYE %s, want %s", reason, reasonFlood)
	}
	posts := 0
	for _, l := range before {
		if l.Code == protocol.CodeSent {
			posts++
		}
	}
	// Each post makes 20 copies and costs 20 tokens: the burst and a
	// second of the rate pay for about 10 posts, not 200 (4,000 copies);
	// the rate over the time alice was held back, when a loaded machine
	// made that longer.
	copies := posts * (members - 1)
	if most := burst + int(rate*max(held, flood).Seconds()) + members; posts == 0 || copies > most {
		t.Fatalf("%d posts (%d copies) of 200 accepted; want at most %d copies", posts, copies, most)
	}
}

func TestQueueShare(t *testing.T) {
	data := t.TempDir()
	edit := func(c *Config) { c.Data, c.MaxQueue, c.Limits.QueueShare = data, 12, 5 }
	srv := startLimitServer(t, edit)
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	bobID := register(r, "bob", "pw")
	register(r, "carol", "pw")
	a := dial(t, srv, "alice")
	a.login("alice", "pw")
	var lines []string
	for i := range 8 {
		lines = append(lines, fmt.Sprintf("@f%d MSG bob %d", i, i))
	}
	a.pipeline(lines)
	stored, refused := 0, 0
	for range 8 {
		l := a.waitFor("a reply", func(l protocol.Line) bool { return l.Code == protocol.CodeSent || l.Code == protocol.CodeQueueFull })
		if l.Code == protocol.CodeSent {
			stored++
		} else if strings.Contains(l.Text, "your share") {
			refused++
		}
	}
	if stored != 5 || refused != 3 {
		t.Fatalf("alice flooding offline bob: %d stored, %d refused for her share; want 5 and 3", stored, refused)
	}
	// Others still reach bob.
	c := dial(t, srv, "carol")
	c.login("carol", "pw")
	sent(t, c.do("MSG bob hello"), "stored", bobID)

	// Her share is still taken after a restart (the store's rows count).
	srv.Shutdown()
	srv = limitServer(t, edit)
	a = dial(t, srv, "alice")
	a.login("alice", "pw")
	if l := a.do("MSG bob again"); l.Code != protocol.CodeQueueFull {
		t.Fatalf("after a restart: %d %s, want 450", l.Code, l.Text)
	}
	// Once bob has read them, she may send again.
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	var ids []string
	for range 6 {
		ids = append(ids, strconv.FormatInt(b.nextMsg().id, 10))
	}
	b.send("ACK " + strings.Join(ids, ","))
	b.quiet()
	a.send("@again MSG bob read them?")
	b.send("ACK " + strconv.FormatInt(b.nextMsg().id, 10))
	sent(t, a.waitFor("the 250", func(l protocol.Line) bool { return l.Tag == "again" }), "delivered", bobID)
}

func TestPresenceChangesCoalesced(t *testing.T) {
	interval := 100 * time.Millisecond
	srv := limitServer(t, func(c *Config) { c.Limits.PresenceInterval, c.Limits.MsgRate = interval, 0 })
	r := dial(t, srv, "reg")
	aliceID := register(r, "alice", "pw")
	register(r, "bob", "pw")
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	a := dial(t, srv, "alice")
	a.login("alice", "pw")
	b.waitFor("alice online", func(l protocol.Line) bool { return l.Kind == "PRESENCE" && l.Args[0] == idStr(aliceID) })
	const n = 2000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = "SET status s" + strconv.Itoa(i)
	}
	start := time.Now()
	a.pipeline(lines)
	events := 0
	for {
		l := b.next()
		if l.Kind != "PRESENCE" || l.Args[0] != idStr(aliceID) {
			continue
		}
		events++
		if len(l.Args) > 3 && l.Args[3] == "s"+strconv.Itoa(n-1) {
			break // the latest state arrived
		}
	}
	elapsed := time.Since(start)
	if most := 2 + int(elapsed/interval); events > most {
		t.Fatalf("%d SET status lines made %d PRESENCE events in %v; want at most one per %v (%d)", n, events, elapsed, interval, most)
	}
}

func TestOnePendingRequestPerPair(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Limits.MsgRate = 0 })
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	register(r, "bob", "pw")
	a := dial(t, srv, "alice")
	a.login("alice", "pw")
	a.want("CREATE #club invite", protocol.CodeOK)
	var lines []string
	for range 500 {
		lines = append(lines, "ADD bob")
	}
	for range 50 {
		lines = append(lines, "INVITE #club bob")
	}
	a.pipeline(lines)
	for range 550 {
		a.waitFor("a 200", func(l protocol.Line) bool { return l.Code == protocol.CodeOK })
	}
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	b.send("@p PING")
	friend, invite := 0, 0
	for {
		l := b.next()
		if l.Tag == "p" {
			break
		}
		if l.Kind == "REQUEST" {
			switch l.Args[4] {
			case "friend":
				friend++
			case "invite":
				invite++
			}
		}
	}
	if friend != 1 || invite != 1 {
		t.Fatalf("500 ADD and 50 INVITE gave bob %d friend requests and %d invites; want 1 and 1", friend, invite)
	}
}

func TestFriendsModeHidesPresence(t *testing.T) {
	srv := limitServer(t, func(c *Config) { c.Presence = "friends" })
	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	bobID := register(r, "bob", "pw")
	register(r, "carol", "pw")
	register(r, "dave", "pw") // never online
	a := dial(t, srv, "alice")
	a.login("alice", "pw")
	b := dial(t, srv, "bob")
	b.login("bob", "pw")
	a.want("ADD bob", protocol.CodeOK)
	b.want("ACCEPT friend alice", protocol.CodeOK)
	b.want("CREATE #g", protocol.CodeOK)
	b.want("AWAY at lunch", protocol.CodeOK)
	c := dial(t, srv, "carol")
	c.login("carol", "pw")
	c.want("JOIN #g", protocol.CodeOK)

	info := func(who *client, user string) string {
		t.Helper()
		who.tags++
		tag := "i" + strconv.Itoa(who.tags)
		who.send("@" + tag + " INFO " + user)
		var keys []string
		for {
			l := who.next()
			if l.Tag != tag {
				continue
			}
			if !l.More {
				return strings.Join(keys, "|")
			}
			if !strings.HasPrefix(l.Text, "id ") && !strings.HasPrefix(l.Text, "nick ") && !strings.HasPrefix(l.Text, "registered ") {
				keys = append(keys, l.Text)
			}
		}
	}
	list := func(who *client, cmd string) []string {
		t.Helper()
		who.tags++
		tag := "l" + strconv.Itoa(who.tags)
		who.send("@" + tag + " " + cmd)
		var out []string
		for {
			l := who.next()
			if l.Tag == tag && l.More {
				out = append(out, l.Text)
			} else if l.Tag == tag {
				return out
			}
		}
	}
	// A friend sees it all.
	if got := info(a, "bob"); got != "state away|away at lunch|friend yes" {
		t.Errorf("alice's INFO bob: %q", got)
	}
	a.want("NUDGE bob", protocol.CodeOK)
	b.waitFor("alice's nudge", func(l protocol.Line) bool { return l.Kind == "NUDGE" })
	// carol is no friend: bob looks exactly like dave, who is offline.
	if got, off := info(c, "bob"), info(c, "dave"); got != "state offline" || off != got {
		t.Errorf("carol's INFO bob %q, INFO dave %q; want both \"state offline\"", got, off)
	}
	if got := list(c, "FIND bob"); len(got) != 1 || got[0] != idStr(bobID)+" bob offline" {
		t.Errorf("carol's FIND bob: %q", got)
	}
	if got := list(c, "MEMBERS #g"); len(got) != 2 || got[0] != idStr(bobID)+" bob offline owner" {
		t.Errorf("carol's MEMBERS #g: %q", got)
	}
	for _, cmd := range []string{"NUDGE", "CHAT"} {
		bob, dave := c.do(cmd+" bob"), c.do(cmd+" dave")
		if bob.Code != protocol.CodeOffline || dave.Code != protocol.CodeOffline {
			t.Errorf("carol's %s bob: %d %s; %s dave: %d %s; want 453 for both", cmd, bob.Code, bob.Text, cmd, dave.Code, dave.Text)
		}
	}
	b.quiet() // nothing from carol reached bob
}

func TestNickLookalikesRefused(t *testing.T) {
	data := t.TempDir()
	// Two accounts made before the rule, that look alike: both keep
	// working, each under its own name.
	st := openSQLite(t, data)
	zoe, err := st.CreateUser(context.Background(), "zoe", hashOf(t, "pw1"))
	if err != nil {
		t.Fatal(err)
	}
	zoeCyr, err := st.CreateUser(context.Background(), "z\u043e\u0435", hashOf(t, "pw2")) // Cyrillic о and е
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv := limitServer(t, func(c *Config) { c.Data = data })
	c := dial(t, srv, "c")
	if l := c.do("USER zoe"); l.Code == protocol.CodePassword {
		if l := c.want("PASS pw1", protocol.CodeLoggedIn); !strings.HasPrefix(l.Text, idStr(zoe)+" ") {
			t.Fatalf("zoe logged in as %s", l.Text)
		}
	}
	c = dial(t, srv, "c2")
	c.want("USER z\u043e\u0435", protocol.CodePassword)
	if l := c.want("PASS pw2", protocol.CodeLoggedIn); !strings.HasPrefix(l.Text, idStr(zoeCyr)+" ") {
		t.Fatalf("the Cyrillic zoe logged in as %s", l.Text)
	}

	r := dial(t, srv, "reg")
	register(r, "alice", "pw")
	register(r, "bobO", "pw")
	for _, tt := range []struct {
		nick string
		code int
	}{
		{"\u0430lice", protocol.CodeNameTaken}, // Cyrillic а
		{"ALICE", protocol.CodeNameTaken},
		{"ａｌｉｃｅ", protocol.CodeNameTaken}, // fullwidth
		{"bob0", protocol.CodeNameTaken},
		{"zoe", protocol.CodeNameTaken},
		{"１２３", protocol.CodeSyntax}, // fullwidth digits
		{"٤٢", protocol.CodeSyntax},  // Arabic-Indic digits
		{"۱۲۳", protocol.CodeSyntax}, // Extended Arabic-Indic digits
	} {
		if l := r.do("REG " + tt.nick + " pw"); l.Code != tt.code {
			t.Errorf("REG %s: %d %s, want %d", tt.nick, l.Code, l.Text, tt.code)
		}
	}
	a := dial(t, srv, "alice")
	a.login("alice", "pw")
	a.want("SET nick Alice", protocol.CodeOK) // her own name in another case
	if l := a.do("SET nick b\u043ebO"); l.Code != protocol.CodeNameTaken {
		t.Errorf("SET nick like bobO: %d %s", l.Code, l.Text)
	}
	a.want("SET nick alicia", protocol.CodeOK)
	register(r, "\u0430lice", "pw") // the look-alike is free once alice is gone
}

func hashOf(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestLimitsExempt(t *testing.T) {
	exempt, err := limits.ParseExempt([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := limitServer(t, func(c *Config) {
		c.Limits.Exempt = exempt
		c.Limits.RegPerAddr, c.Limits.MaxUnauthPerAddr = 1, 1
		c.Limits.MsgRate, c.Limits.MsgBurst, c.Limits.FloodAfter = 1, 1, time.Millisecond
	})
	r := dialFrom(t, srv, "reg", "127.0.0.1")
	dialFrom(t, srv, "idle", "127.0.0.1") // a second one not logged in
	register(r, "alice", "pw")
	register(r, "bob", "pw")
	r.login("alice", "pw")
	lines := make([]string, 100)
	for i := range lines {
		lines[i] = fmt.Sprintf("@m%d MSG bob %d", i, i)
	}
	r.pipeline(lines)
	for i := range lines {
		tag := fmt.Sprintf("m%d", i)
		r.waitFor("the 250 of "+tag, func(l protocol.Line) bool { return l.Tag == tag && l.Code == protocol.CodeSent })
	}
	// Other addresses are not exempt.
	dialFrom(t, srv, "other", "127.0.0.2")
	if _, l := connect(t, srv, "other2", "127.0.0.2"); l.Code != protocol.CodeUnavailable {
		t.Fatalf("a second connection from 127.0.0.2: %d %s, want 421", l.Code, l.Text)
	}
}

func TestLimitsLoggedAtStart(t *testing.T) {
	var buf fakeserver.Buffer
	limitServer(t, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&buf, nil)) })
	out := buf.String()
	for _, want := range []string{"msg=limits", "exempt=none", "msg_rate=50", "msg_burst=500", "flood_after=10s",
		"login_free=5", "login_lockout=20", "login_account_free=10", "login_account_max_delay=1m0s", "relay_per_user=8", "relay_per_addr=16", "reg_per_addr_10m=10", "max_unauth_per_addr=16", "max_unauth=1024",
		"queue_share=1000", "presence_interval=1s"} {
		if !strings.Contains(out, want) {
			t.Errorf("start log lacks %q:\n%s", want, out)
		}
	}
}

// TestAccountQueueSlowsGuessesFromManyAddresses: guesses at one account
// from many addresses, none of them past its own limits, make the
// account's password logins take turns; a turn too far away is refused
// with 452 (the connection stays, nothing counted), a resumption token
// is not queued.
func TestAccountQueueSlowsGuessesFromManyAddresses(t *testing.T) {
	srv := limitServer(t, func(c *Config) {
		c.Limits.LoginAccountFree, c.Limits.LoginDelay, c.Limits.LoginAccountMax = 2, 10*time.Minute, 10*time.Minute
	})
	owner := dialFrom(t, srv, "owner", "127.0.0.1")
	register(owner, "alice", "pw")
	owner.login("alice", "pw")
	tok := owner.token()
	for i := 2; i <= 4; i++ { // three guessers, one guess each: the third takes the first turn
		g := dialFrom(t, srv, "guesser", "127.0.0."+strconv.Itoa(i))
		g.want("USER alice", protocol.CodePassword)
		g.want("PASS guess", protocol.CodeLoginFailed)
	}
	// The next turn is 10 minutes away, past the login deadline: refused.
	g := dialFrom(t, srv, "guesser", "127.0.0.5")
	g.want("USER alice", protocol.CodePassword)
	l := g.do("PASS guess")
	if l.Code != protocol.CodeRateLimit || !strings.Contains(l.Text, "on this account; try again in") {
		t.Fatalf("a guess while the account's turns are taken: %d %s, want 452", l.Code, l.Text)
	}
	g.want("PING x", protocol.CodeOK) // not closed
	// Another account is not slowed.
	r := dialFrom(t, srv, "reg", "127.0.0.6")
	register(r, "bob", "pw")
	r.login("bob", "pw")
	// The owner's devices get back in with a token, at once.
	dialFrom(t, srv, "device", "127.0.0.7").want("RESUME "+tok, protocol.CodeLoggedIn)
}

package serve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/sqlite"
	"qchat/protocol"
)

// ioWait bounds every wait on the network in these tests. It is a guard
// against a hang, never a timing assertion: nothing here sleeps.
const ioWait = 10 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("QCHAT_TEST_LOG") != "" {
		return slog.Default()
	}
	if os.Getenv("QCHAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestHandlersCoverCommands(t *testing.T) {
	for _, syn := range protocol.Commands {
		h, ok := handlers[syn.Name]
		if !ok || h.run == nil {
			t.Errorf("verb %s of protocol.Commands has no handler", syn.Name)
		}
	}
	for verb := range handlers {
		if protocol.LookupCommand(verb) == nil {
			t.Errorf("handler %s is not a verb of protocol.Commands", verb)
		}
	}
	// What a person with nc needs before logging in, and nothing else that
	// touches another user.
	for _, verb := range []string{"REG", "USER", "PASS", "QUIT", "PING", "HELP"} {
		if h, ok := handlers[verb]; ok && !h.preLogin {
			t.Errorf("%s is not usable before login", verb)
		}
	}
	for _, verb := range []string{"MSG", "LIST", "INFO", "ACK"} {
		if h, ok := handlers[verb]; ok && h.preLogin {
			t.Errorf("%s is usable before login", verb)
		}
	}
}

// openSQLite opens the SQLite store of a data folder, as a server would.
func openSQLite(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(dir, "normal", testLogger())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

func TestIDAllocSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openSQLite(t, dir)
	a, err := newIDAlloc(ctx, st, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	take := func(n int) {
		for range n {
			id := a.Next()
			if id <= last {
				t.Fatalf("Next() = %d after %d", id, last)
			}
			last = id
		}
	}
	take(100)
	// Use the block up to its last ids: the next reservation starts, and
	// Next waits for it rather than run past the reserved range.
	a.mu.Lock()
	hi := a.hi
	a.next = hi - 5
	a.mu.Unlock()
	last = hi - 6
	take(20)
	if last <= hi {
		t.Fatalf("ids stopped at %d, the end of the first block is %d", last, hi)
	}

	// Concurrent callers get distinct ids.
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				id := a.Next()
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d given twice", id)
				}
				seen[id] = true
				last = max(last, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openSQLite(t, dir)
	defer st.Close()
	b, err := newIDAlloc(ctx, st, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if id := b.Next(); id <= last {
		t.Fatalf("after reopen Next() = %d, but %d was given before", id, last)
	}
}

// testServer starts a server on a free port of 127.0.0.1 over data.
func testServer(t *testing.T, data string) *Server {
	t.Helper()
	return testServerCfg(t, data, Defaults())
}

// startTestServer is testServer with edit's changes to the defaults.
func startTestServer(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	cfg := Defaults()
	edit(&cfg)
	return testServerCfg(t, cfg.Data, cfg)
}

// testServerCfg is testServer with cfg's other settings.
func testServerCfg(t *testing.T, data string, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Data = data
	cfg.Name = "test"
	cfg.HashCost = bcrypt.MinCost
	cfg.Sync = "normal"
	cfg.AckGrace = time.Hour // "delivered" or "stored" must not depend on speed
	cfg.Log = testLogger()
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return srv
}

// client is a raw line client, as a person with nc would be.
type client struct {
	t    *testing.T
	name string
	conn net.Conn
	rd   *bufio.Reader
	tags int
}

func dial(t *testing.T, srv *Server, name string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), ioWait)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	c := &client{t: t, name: name, conn: conn, rd: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	if l := c.next(); l.Code != protocol.CodeGreeting {
		t.Fatalf("%s: greeting %+v", name, l)
	}
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := io.WriteString(c.conn, line+"\n"); err != nil {
		c.t.Fatalf("%s: send %q: %v", c.name, line, err)
	}
}

// next reads and parses one line from the server.
func (c *client) next() protocol.Line {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(ioWait))
	s, err := c.rd.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: read: %v (got %q)", c.name, err, s)
	}
	l, err := protocol.ParseLine([]byte(strings.TrimSuffix(s, "\n")))
	if err != nil {
		c.t.Fatalf("%s: server sent %q: %v", c.name, s, err)
	}
	return l
}

// waitFor reads until a line matches, failing on any reply not matched
// that is a failure; other lines (presence events) are skipped.
func (c *client) waitFor(what string, match func(protocol.Line) bool) protocol.Line {
	c.t.Helper()
	deadline := time.Now().Add(ioWait)
	for time.Now().Before(deadline) {
		l := c.next()
		if match(l) {
			return l
		}
		if l.Kind == "MSG" || l.Code >= 400 {
			c.t.Fatalf("%s: waiting for %s, got %+v", c.name, what, l)
		}
	}
	c.t.Fatalf("%s: no %s within %v", c.name, what, ioWait)
	return protocol.Line{}
}

// do sends a tagged command and returns its final reply line.
func (c *client) do(cmd string) protocol.Line {
	c.t.Helper()
	c.tags++
	tag := c.name + strconv.Itoa(c.tags)
	c.send("@" + tag + " " + cmd)
	return c.waitFor("the reply to "+cmd, func(l protocol.Line) bool { return l.Tag == tag && !l.IsEvent() && !l.More })
}

func (c *client) want(cmd string, code int) protocol.Line {
	c.t.Helper()
	l := c.do(cmd)
	if l.Code != code {
		c.t.Fatalf("%s: %s: got %d %s, want %d", c.name, cmd, l.Code, l.Text, code)
	}
	return l
}

func (c *client) login(nick, pw string) {
	c.t.Helper()
	c.want("USER "+nick, protocol.CodePassword)
	c.want("PASS "+pw, protocol.CodeLoggedIn)
}

// msg is a MSG event as a client sees it.
type msg struct {
	id, from int64
	nick     string
	text     string
}

func (c *client) nextMsg() msg {
	c.t.Helper()
	l := c.waitFor("a MSG event", func(l protocol.Line) bool { return l.Kind == "MSG" })
	id, _ := strconv.ParseInt(l.Args[0], 10, 64)
	from, _ := strconv.ParseInt(l.Args[1], 10, 64)
	if _, err := protocol.ParseTime(l.Args[3]); err != nil || id <= 0 || from <= 0 {
		c.t.Fatalf("%s: bad MSG event %q", c.name, l.Args)
	}
	return msg{id, from, l.Args[2], l.Args[4]}
}

// sent checks a 250 reply: "<msgid> delivered|stored <recipient> <time>".
func sent(t *testing.T, l protocol.Line, how string, to int64) int64 {
	t.Helper()
	f := strings.Fields(l.Text)
	if l.Code != protocol.CodeSent || len(f) < 3 || f[1] != how || f[2] != strconv.FormatInt(to, 10) {
		t.Fatalf("got %d %q, want 250 <id> %s %d", l.Code, l.Text, how, to)
	}
	id, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || id <= 0 {
		t.Fatalf("bad message id in %q", l.Text)
	}
	return id
}

// register creates an account and returns its id.
func register(c *client, nick, pw string) int64 {
	c.t.Helper()
	l := c.want("REG "+nick+" "+pw, protocol.CodeRegistered)
	id, err := strconv.ParseInt(strings.Fields(l.Text)[0], 10, 64)
	if err != nil {
		c.t.Fatalf("REG reply %q", l.Text)
	}
	return id
}

// quiet checks that nothing is waiting for c: the reply to a PING comes
// first, and the server writes in order.
func (c *client) quiet() {
	c.t.Helper()
	c.tags++
	tag := c.name + strconv.Itoa(c.tags)
	c.send("@" + tag + " PING q")
	for {
		l := c.next()
		if l.Tag == tag {
			return
		}
		if l.Kind != "PRESENCE" && l.Kind != "PRESENCES" {
			c.t.Fatalf("%s: expected nothing before the PING reply, got %+v", c.name, l)
		}
	}
}

func TestEndToEnd(t *testing.T) { eachStore(t, testEndToEnd) }

func testEndToEnd(t *testing.T, ts testStore) {
	data := t.TempDir()
	srv := ts.server(t, data)
	running := true
	defer func() {
		if running {
			srv.Shutdown()
		}
	}()

	a := dial(t, srv, "a")
	alice := register(a, "alice", "pw-alice")
	bob := register(a, "bob", "pw bob with spaces")
	carol := register(a, "carol", "pw-carol")
	if alice != store.FirstUserID || bob != store.FirstUserID+1 || carol != store.FirstUserID+2 {
		t.Fatalf("ids %d %d %d, want %d and on", alice, bob, carol, store.FirstUserID)
	}
	a.want("REG ALICE other", protocol.CodeNameTaken)
	a.want("MSG bob too early", protocol.CodeNeedLogin)
	a.login("alice", "pw-alice")

	b := dial(t, srv, "b")
	b.want("USER bob", protocol.CodePassword)
	b.want("PASS wrong", protocol.CodeLoginFailed)
	b.login("BOB", "pw bob with spaces")
	// The 230 comes before the session takes over its mailbox; once a
	// later command is answered, bob is online for everyone.
	b.quiet()

	// Online recipient: the sender hears "delivered" only once it ACKs.
	text := "hello 你好 🙂 \x1b[2J  two  spaces "
	a.send("@m1 MSG bob " + text)
	m := b.nextMsg()
	if m.from != alice || m.nick != "alice" || m.text != text {
		t.Fatalf("bob got %+v", m)
	}
	a.quiet() // no 250 before the ACK
	b.send("ACK " + strconv.FormatInt(m.id, 10))
	l := a.waitFor("the 250 for m1", func(l protocol.Line) bool { return l.Tag == "m1" })
	if id := sent(t, l, "delivered", bob); id != m.id {
		t.Fatalf("sender told id %d, recipient got %d", id, m.id)
	}
	a.want("MSG nobody hi", protocol.CodeNoSuchUser)
	a.want("MSG bob a\rb", protocol.CodeSyntax)

	// Offline recipient: "stored", then delivered at login.
	l = a.do("MSG carol for later")
	stored := sent(t, l, "stored", carol)
	if stored <= m.id {
		t.Fatalf("message id %d after %d", stored, m.id)
	}
	c := dial(t, srv, "c")
	c.login("carol", "pw-carol")
	if m := c.nextMsg(); m.id != stored || m.text != "for later" || m.from != alice {
		t.Fatalf("carol got %+v, want message %d", m, stored)
	}
	c.send(fmt.Sprint("ACK ", stored))
	c.quiet() // the ACK is handled before what follows

	// A recipient that leaves: what it did not ACK is stored for it.
	b.want("QUIT", protocol.CodeBye)
	l = a.do("MSG bob while you were out")
	whileOut := sent(t, l, "stored", bob)

	// Restart: accounts, ids and the stored message survive.
	srv.Shutdown()
	running = false
	srv = ts.server(t, data)
	running = true

	a = dial(t, srv, "a2")
	a.login("alice", "pw-alice")
	dave := register(a, "dave", "pw-dave")
	if dave != carol+1 {
		t.Fatalf("after restart dave is %d, want %d", dave, carol+1)
	}
	l = a.do("MSG dave after the restart")
	if id := sent(t, l, "stored", dave); id <= whileOut {
		t.Fatalf("after restart message id %d, but %d was given before", id, whileOut)
	}

	b = dial(t, srv, "b2")
	b.login("bob", "pw bob with spaces")
	if m := b.nextMsg(); m.id != whileOut || m.text != "while you were out" {
		t.Fatalf("bob got %+v after the restart, want message %d", m, whileOut)
	}
	b.send(fmt.Sprint("ACK ", whileOut))
	b.quiet()

	// Each message once: carol acknowledged hers before the restart, bob
	// his after; neither gets anything again.
	c = dial(t, srv, "c2")
	c.login("carol", "pw-carol")
	c.quiet()
	b.want("QUIT", protocol.CodeBye)
	b = dial(t, srv, "b3")
	b.login("bob", "pw bob with spaces")
	b.quiet()
}

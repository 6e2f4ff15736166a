package serve

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"qchat/protocol"
)

// parkServer is a server whose idle sessions park after 20ms, and the
// function that shuts it down (once; at the end of the test if not before).
func parkServer(t *testing.T, mod func(*Config)) (*Server, func()) {
	t.Helper()
	cfg := Defaults()
	cfg.Listen, cfg.Data, cfg.Name = "127.0.0.1:0", t.TempDir(), "test"
	cfg.HashCost, cfg.Sync, cfg.AckGrace = bcrypt.MinCost, "normal", time.Hour
	cfg.Log = testLogger()
	cfg.parkAfter = 20 * time.Millisecond
	cfg.Limits.MsgRate = 0
	if mod != nil {
		mod(&cfg)
	}
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stop := sync.OnceFunc(srv.Shutdown)
	t.Cleanup(stop)
	return srv, stop
}

// parked counts the server's sessions that are parked.
func parked(srv *Server) (parked, all int) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range srv.sessions {
		all++
		if s.park.Load() == parkParked {
			parked++
		}
	}
	return parked, all
}

func waitParked(t *testing.T, srv *Server, n int) {
	t.Helper()
	waitUntil(t, strconv.Itoa(n)+" sessions parked", func() bool { p, _ := parked(srv); return p == n })
}

func TestIdleSessionsParkAndWake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions park on Linux only")
	}
	srv, stop := parkServer(t, nil)
	fp := *srv.fp.Load()
	base := runtime.NumGoroutine() // the server's own, with no session
	reg := dial(t, srv, "reg")
	const n = 10
	ids := make([]int64, n)
	clients := make([]*client, n)
	for i := range clients {
		nick := "u" + strconv.Itoa(i)
		ids[i] = register(reg, nick, "pw")
		clients[i] = dial(t, srv, nick)
		if i%2 == 0 {
			clients[i].startTLS(fp) // half of them over TLS
		}
		clients[i].login(nick, "pw")
	}
	reg.want("QUIT", protocol.CodeBye)
	waitParked(t, srv, n)
	if now := runtime.NumGoroutine(); now >= base+n/2 {
		t.Errorf("goroutines: %d with no session, %d with %d sessions parked", base, now, n)
	}

	// A parked session wakes for a line, answers, and parks again.
	for i, c := range clients {
		c.want("PING x"+strconv.Itoa(i), protocol.CodeOK)
	}
	waitParked(t, srv, n)

	// A message to a parked user goes out (writes need no goroutine); its
	// ACK wakes the session, and the sender hears "delivered".
	a, b := clients[0], clients[1]
	a.send("@m MSG u1 hello parked")
	m := b.nextMsg()
	b.send("ACK " + strconv.FormatInt(m.id, 10))
	sent(t, a.waitFor("the 250", func(l protocol.Line) bool { return l.Tag == "m" }), "delivered", ids[1])
	waitParked(t, srv, n)

	// A client that goes away while parked is noticed at once.
	clients[2].conn.Close()
	waitUntil(t, "u2 offline", func() bool { return !srv.hub.isOnline(ids[2]) })

	// A parked session closed from elsewhere (another login of its
	// account) is told and cleaned up.
	c3 := dial(t, srv, "u3b")
	c3.login("u3", "pw")
	clients[3].waitFor("BYE takeover", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == "takeover" })
	waitParked(t, srv, n-1)

	// Shutdown ends the parked sessions too (it would hang on them otherwise).
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(ioWait):
		t.Fatal("Shutdown hangs on parked sessions")
	}
	for i, c := range clients {
		if i == 2 || i == 3 {
			continue
		}
		c.waitFor("BYE shutdown", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == "shutdown" })
	}
}

func TestParkedSessionsAnswerPing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions park on Linux only")
	}
	srv, _ := parkServer(t, func(c *Config) { c.PingInterval, c.PingTimeout = 100*time.Millisecond, 5*time.Second })
	c := dial(t, srv, "alice")
	register(c, "alice", "pw")
	c.login("alice", "pw")
	for range 3 {
		waitParked(t, srv, 1)
		l := c.waitFor("a PING", func(l protocol.Line) bool { return l.Kind == "PING" })
		c.send("PONG " + l.Args[0])
	}
	waitParked(t, srv, 1)
	if !srv.hub.isOnline(srv.dir.lookup("alice").id) {
		t.Fatal("a parked session that answers PING went offline")
	}
}

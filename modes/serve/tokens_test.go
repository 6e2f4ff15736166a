package serve

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"qchat/protocol"
)

// countHashes counts the bcrypt comparisons the server runs from now on.
func countHashes(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	orig := comparePassword
	comparePassword = func(hash, pw []byte) error {
		n.Add(1)
		return orig(hash, pw)
	}
	t.Cleanup(func() { comparePassword = orig })
	return &n
}

// token asks for a resumption token and checks the reply's shape.
func (c *client) token() string {
	c.t.Helper()
	l := c.want("TOKEN", protocol.CodeToken)
	f := strings.Fields(l.Text)
	if len(f) != 2 {
		c.t.Fatalf("%s: TOKEN: %q, want \"<token> <expires>\"", c.name, l.Text)
	}
	exp, err := protocol.ParseTime(f[1])
	if err != nil || exp.Before(time.Now().Add(time.Hour)) {
		c.t.Fatalf("%s: TOKEN expires %q (%v), want a week ahead", c.name, f[1], err)
	}
	return f[0]
}

func TestResumeWithoutTheHash(t *testing.T) {
	data := t.TempDir()
	srv := testServer(t, data)
	a := dial(t, srv, "alice")
	aliceID := register(a, "alice", "pw")
	a.login("alice", "pw")
	tok := a.token()

	hashes := countHashes(t)
	b := dial(t, srv, "again")
	l := b.want("RESUME "+tok, protocol.CodeLoggedIn)
	if l.Text != idStr(aliceID)+" alice" {
		t.Fatalf("RESUME: %q", l.Text)
	}
	a.waitFor("takeover", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == "takeover" })
	b.want("LIST", protocol.CodeList) // logged in for real
	if n := hashes.Load(); n != 0 {
		t.Fatalf("RESUME ran bcrypt %d times", n)
	}

	// A token is good for one login: the same one again is refused, and
	// counts as a failed login.
	tok2 := b.token()
	tok3 := b.token()
	r := dial(t, srv, "replay")
	for range maxAuthFailures {
		r.want("RESUME "+tok, protocol.CodeLoginFailed)
	}
	r.waitFor("BYE auth-failures", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == reasonAuthFailures })

	// Tokens outlive a restart (the key is in the data folder), and so
	// does what was spent.
	srv.Shutdown()
	srv = testServer(t, data)
	defer srv.Shutdown()
	dial(t, srv, "replay").want("RESUME "+tok, protocol.CodeLoginFailed)
	c := dial(t, srv, "restarted")
	c.want("RESUME "+tok2, protocol.CodeLoggedIn)
	if n := hashes.Load(); n != 0 {
		t.Fatalf("RESUME after a restart ran bcrypt %d times", n)
	}

	// A new password revokes every earlier token.
	c.want("PASSWD pw pw2", protocol.CodeOK)
	d := dial(t, srv, "stale")
	d.want("RESUME "+tok3, protocol.CodeLoginFailed)
	d.login("alice", "pw2")
}

func TestResumeRefusesForgeries(t *testing.T) {
	srv := startServer(t, nil)
	a := dial(t, srv, "alice")
	register(a, "alice", "pw")
	bobID := register(a, "bob", "pw")
	a.login("alice", "pw")
	tok := a.token()
	_, rest, _ := cutID(tok)
	m := dial(t, srv, "mallory")
	i := strings.LastIndexByte(tok, '.') + 1
	other := map[byte]string{'A': "B"}[tok[i]]
	if other == "" {
		other = "A"
	}
	for _, forged := range []string{idStr(bobID) + "." + rest, tok[:i] + other + tok[i+1:], "hunter2"} {
		if l := m.do("RESUME " + forged); l.Code != protocol.CodeLoginFailed {
			t.Fatalf("RESUME %s: %d %s, want 535", forged, l.Code, l.Text)
		}
	}
	m.waitFor("BYE auth-failures", func(l protocol.Line) bool { return l.Kind == "BYE" && l.Args[0] == "auth-failures" })
}

func TestResumeNeedsEncryptionFromAfar(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.wrapListener = fromAfar })
	fp := *srv.fp.Load()
	a := dial(t, srv, "alice")
	a.startTLS(fp)
	register(a, "alice", "pw")
	a.login("alice", "pw")
	tok := a.token()
	b := dial(t, srv, "clear")
	if l := b.do("RESUME " + tok); l.Code != protocol.CodeEncryptionRequired {
		t.Fatalf("RESUME in clear from afar: %d %s, want 538", l.Code, l.Text)
	}
	b.startTLS(fp)
	b.want("RESUME "+tok, protocol.CodeLoggedIn)
}

func TestResumeOff(t *testing.T) {
	for _, ttl := range []time.Duration{0, time.Hour} {
		srv := startServer(t, func(c *Config) { c.ResumeTTL = ttl })
		g := greeting(t, srv)
		if strings.Contains(g, " resume") != (ttl > 0) {
			t.Fatalf("--resume-ttl %v: greeting %q", ttl, g)
		}
	}
	srv := startServer(t, func(c *Config) { c.ResumeTTL = 0 })
	a := dial(t, srv, "alice")
	register(a, "alice", "pw")
	a.login("alice", "pw")
	a.want("TOKEN", protocol.CodeNotYet)
	b := dial(t, srv, "bob")
	b.want("RESUME 1000.1.AAAAAAAAAAAAAAAAAAAAAA", protocol.CodeNotYet)
}

// greeting is the text of the server's 220.
func greeting(t *testing.T, srv *Server) string {
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), ioWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(ioWait))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

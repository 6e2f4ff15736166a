package serve

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"qchat/modes/serve/limits"
	"qchat/protocol"
)

// presenceServer is a server whose presence batches go out only when the
// test says (flushPresence), but for the first change, which goes at once.
func presenceServer(t *testing.T, mode string) *Server {
	exempt, err := limits.ParseExempt([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return limitServer(t, func(c *Config) {
		c.Limits.Exempt = exempt
		c.Presence = mode
		c.Limits.PresenceInterval = time.Hour
		c.Limits.MsgRate = 0
	})
}

// loginAll registers and logs in n users nick0..nick(n-1), each answered
// a PING after its login (so its change is noted), and returns them.
func loginAll(t *testing.T, srv *Server, prefix string, n int) []*client {
	r := dial(t, srv, "reg")
	out := make([]*client, n)
	for i := range out {
		nick := fmt.Sprintf("%s%d", prefix, i)
		register(r, nick, "pw")
		out[i] = dial(t, srv, nick)
		out[i].login(nick, "pw")
		out[i].want("PING", protocol.CodeOK)
	}
	return out
}

// presenceLines reads what a batch brought c: PRESENCE lines (by user id)
// or one PRESENCES summary, up to the reply of a PING it sends after them.
func presenceLines(c *client) (lines map[string]string, summary []string) {
	c.t.Helper()
	lines = map[string]string{}
	c.send("@after PING")
	for {
		l := c.next()
		switch {
		case l.Tag == "after":
			return lines, summary
		case l.Kind == "PRESENCE":
			lines[l.Args[0]] = strings.Join(l.Args[1:], " ")
		case l.Kind == "PRESENCES":
			if summary != nil {
				c.t.Fatalf("%s: two summaries for one batch", c.name)
			}
			summary = l.Args
		case !l.IsEvent():
			c.t.Fatalf("%s: unexpected %+v", c.name, l)
		}
	}
}

func TestPresenceSmallBatchIsLines(t *testing.T) {
	srv := presenceServer(t, "lan")
	w := loginAll(t, srv, "w", 1)[0] // its own login went at once, to nobody
	users := loginAll(t, srv, "u", 3)
	srv.flushPresence()
	lines, summary := presenceLines(w)
	if summary != nil || len(lines) != 3 {
		t.Fatalf("a batch of 3 logins: lines %v, summary %v; want 3 lines", lines, summary)
	}
	for id, l := range lines {
		if !strings.HasSuffix(l, " online") {
			t.Errorf("user %s: %q, want online", id, l)
		}
	}
	// Each of the three hears the two others, never itself.
	for i, u := range users {
		got, summary := presenceLines(u)
		if summary != nil || len(got) > 3 {
			t.Fatalf("u%d: %v %v", i, got, summary)
		}
		for id := range got {
			if id == idStr(u.loggedInID(srv)) {
				t.Errorf("u%d heard of its own login", i)
			}
		}
	}
}

func TestPresenceBigBatchIsOneSummary(t *testing.T) {
	srv := presenceServer(t, "lan")
	w := loginAll(t, srv, "w", 1)[0]
	list := w.want("LIST", protocol.CodeList)
	f := strings.Fields(list.Text) // "<n> online <version>"
	if len(f) != 3 || f[0] != "1" || f[1] != "online" {
		t.Fatalf("LIST ends %q, want \"1 online <version>\"", list.Text)
	}
	n := maxPresenceLines + 4
	users := loginAll(t, srv, "u", n)
	srv.flushPresence()
	lines, summary := presenceLines(w)
	if len(lines) != 0 || len(summary) != 4 {
		t.Fatalf("a batch of %d logins: lines %v, summary %v; want one PRESENCES", n, lines, summary)
	}
	if summary[0] != f[2] || summary[1] != strconv.Itoa(n) || summary[2] != "0" || summary[3] != "0" {
		t.Fatalf("PRESENCES %v; want since %s, %d online", summary, f[2], n)
	}
	if srv.pres.every != 2*time.Hour {
		t.Fatalf("after a summary the interval is %v, want it stretched to 2h", srv.pres.every)
	}
	// LIST <since> names exactly those who changed.
	delta := w.listLines("LIST " + summary[0])
	if len(delta.lines) != n || !strings.HasPrefix(delta.last, strconv.Itoa(n)+" changed ") {
		t.Fatalf("LIST %s: %d lines, last %q; want %d changed", summary[0], len(delta.lines), delta.last, n)
	}
	// Two leave: the next batch is small, so it comes as lines again.
	users[0].want("QUIT", protocol.CodeBye)
	users[1].want("QUIT", protocol.CodeBye)
	waitUntil(t, "both offline", func() bool { return srv.pres.co.Pending() == 2 })
	srv.flushPresence()
	lines, summary = presenceLines(w)
	if summary != nil || len(lines) != 2 {
		t.Fatalf("2 logouts: lines %v summary %v", lines, summary)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, " offline") {
			t.Errorf("%q, want offline", l)
		}
	}
	if srv.pres.every != time.Hour {
		t.Fatalf("after a small batch the interval is %v, want it back to 1h", srv.pres.every)
	}
	version := strings.Fields(delta.last)[2]
	delta = w.listLines("LIST " + version)
	if len(delta.lines) != 2 || !strings.Contains(delta.lines[0], " offline") {
		t.Fatalf("LIST %s after the logouts: %v", version, delta.lines)
	}
	// A version the server never gave (or forgot) gets the whole list.
	full := w.listLines("LIST 12")
	if !strings.HasPrefix(full.last, strconv.Itoa(n-1)+" online ") {
		t.Fatalf("LIST with an unknown version: %q, want the whole list", full.last)
	}
}

func TestPresenceFriendsBatches(t *testing.T) {
	srv := presenceServer(t, "friends")
	w := loginAll(t, srv, "w", 1)[0]
	stranger := loginAll(t, srv, "s", 1)[0]
	users := loginAll(t, srv, "u", maxPresenceLines+2)
	srv.flushPresence()
	for _, c := range []*client{w, stranger} {
		if lines, summary := presenceLines(c); len(lines) != 0 || summary != nil {
			t.Fatalf("%s heard of strangers: %v %v", c.name, lines, summary)
		}
	}
	// w befriends two of them; their next change reaches w alone.
	for _, u := range users[:2] {
		w.want("ADD "+u.name, protocol.CodeOK)
		u.want("ACCEPT friend w0", protocol.CodeOK)
	}
	users[0].want("AWAY lunch", protocol.CodeOK)
	users[1].want("QUIT", protocol.CodeBye)
	users[2].want("AWAY", protocol.CodeOK)
	waitUntil(t, "three changes", func() bool { return srv.pres.co.Pending() == 3 })
	srv.flushPresence()
	lines, summary := presenceLines(w)
	if summary != nil || len(lines) != 2 || lines[idStr(users[0].loggedInID(srv))] != "u0 away lunch" {
		t.Fatalf("w: lines %v summary %v; want u0 away lunch and u1 offline", lines, summary)
	}
	if lines, summary := presenceLines(stranger); len(lines) != 0 || summary != nil {
		t.Fatalf("a stranger heard of others: %v %v", lines, summary)
	}
}

// loggedInID is the id the server gave c's login.
func (c *client) loggedInID(srv *Server) int64 {
	a := srv.dir.lookup(c.name)
	if a == nil {
		c.t.Fatalf("no account %s", c.name)
	}
	return a.id
}

type listReply struct {
	lines []string
	last  string
}

// listLines runs a list command and returns its lines.
func (c *client) listLines(cmd string) listReply {
	c.t.Helper()
	c.tags++
	tag := c.name + strconv.Itoa(c.tags)
	c.send("@" + tag + " " + cmd)
	var r listReply
	for {
		l := c.next()
		if l.Tag != tag {
			continue
		}
		if l.Code != protocol.CodeList {
			c.t.Fatalf("%s: %s: %d %s", c.name, cmd, l.Code, l.Text)
		}
		if !l.More {
			r.last = l.Text
			return r
		}
		r.lines = append(r.lines, l.Text)
	}
}

package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

func TestParseDurable(t *testing.T) {
	for _, tc := range []struct {
		line     string
		group    bool
		ok       bool
		id, text string
	}{
		{"MSG 17 1001 bob 2026-11-22T10:00:00.000Z hello there", false, true, "17", "hello there"},
		{"MSG 17 1001 bob 2026-11-22T10:00:00.000Z ", false, true, "17", ""},
		{"MSG 17 1001 bob", false, false, "", ""},
		{"GMSG 17 1001 bob 2026-11-22T10:00:00.000Z #fan hello there", false, false, "", ""},
		{"GMSG 42 1001 bob 2026-11-22T10:00:00.000Z #fan hello there", true, true, "42", "hello there"},
		{"GMSG 42 1001 bob 2026-11-22T10:00:00.000Z #fan", true, false, "", ""},
		{"MSG 17 1001 bob 2026-11-22T10:00:00.000Z hello", true, false, "", ""},
		{"PRESENCE 1001 bob online", true, false, "", ""},
	} {
		parse := parseMsg
		if tc.group {
			parse = parseGMsg
		}
		ev, ok := parse([]byte(tc.line))
		if ok != tc.ok || string(ev.id) != tc.id || string(ev.text) != tc.text {
			t.Errorf("%q: got %q %q %v, want %q %q %v", tc.line, ev.id, ev.text, ok, tc.id, tc.text, tc.ok)
		}
	}
}

func TestParseReply(t *testing.T) {
	r, ok := parseReply([]byte("@1z 250 7 delivered #bench-fan100 2026-11-22T10:00:00.000Z"))
	if !ok || string(r.tag) != "1z" || r.code != 250 || string(r.text) != "7 delivered #bench-fan100 2026-11-22T10:00:00.000Z" {
		t.Errorf("got %q %d %q %v", r.tag, r.code, r.text, ok)
	}
	for _, l := range []string{"250 7 stored 1001 x", "@a 25x oops", "@a", "GMSG 1 2 a b #g t"} {
		if _, ok := parseReply([]byte(l)); ok {
			t.Errorf("%q: parsed as a tagged reply", l)
		}
	}
}

// A MSG line as the sender writes it, seen as the server sends it on to a
// group member: the receiver reads the send time back.
func TestAppendMsgSentTime(t *testing.T) {
	line := appendMsg(nil, 35, "#bench-fan1000", "abcdef-1000", 123456789, 64)
	tag, rest, _ := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
	if tag != "@z" {
		t.Errorf("tag %q, want @z", tag)
	}
	text, ok := strings.CutPrefix(rest, "MSG #bench-fan1000 ")
	if !ok || len(text) != 64 {
		t.Fatalf("line %q: want MSG #bench-fan1000 and 64 bytes of text", line)
	}
	ev, ok := parseGMsg([]byte("GMSG 9 1000 bench-g0 2026-11-22T10:00:00.000Z #bench-fan1000 " + text))
	if !ok || string(ev.text) != text {
		t.Fatalf("GMSG not parsed: %q %v", ev.text, ok)
	}
	after, ok := strings.CutPrefix(string(ev.text), "abcdef-1000 ")
	if !ok {
		t.Fatalf("text %q does not start with the run token", ev.text)
	}
	if sent, ok := sentTime([]byte(after)); !ok || sent != 123456789 {
		t.Errorf("sentTime = %d %v, want 123456789", sent, ok)
	}
}

func TestSenderShare(t *testing.T) {
	for _, tc := range []struct{ m, s int }{{1000, 1}, {1000, 3}, {7, 7}, {10, 4}} {
		sum := 0
		for i := range tc.s {
			n := senderShare(tc.m, tc.s, i)
			if n < tc.m/tc.s || n > tc.m/tc.s+1 {
				t.Errorf("senderShare(%d, %d, %d) = %d", tc.m, tc.s, i, n)
			}
			sum += n
		}
		if sum != tc.m {
			t.Errorf("%d messages over %d senders: shares sum to %d", tc.m, tc.s, sum)
		}
	}
}

func TestGroupName(t *testing.T) {
	// The longest prefix and the largest group still make a valid name
	// (# and at most 32 characters).
	if g := groupName(strings.Repeat("p", 20), maxGroup); len(g) > 33 {
		t.Errorf("%q is %d bytes", g, len(g))
	}
	if g := groupName("bench", 1000); g != "#bench-fan1000" {
		t.Errorf("got %q", g)
	}
}

func TestFanLine(t *testing.T) {
	if got, want := fanLine(1000, 250000, 500000), "1000 members: 250000 deliveries/s = 0.50 × the one-to-one relay (500000 msgs/s)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := fanLine(100, 1, 0); !strings.Contains(got, "no one-to-one") {
		t.Errorf("without pairs: %q", got)
	}
}

func TestCheckGroups(t *testing.T) {
	cfg := Defaults()
	cfg.Server, cfg.Pairs = "x:1", 0
	cfg.Groups = []int{0, 100, 1000}
	if err := check(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Groups) != 2 || cfg.GroupWindow != cfg.Window {
		t.Errorf("groups %v, group window %d", cfg.Groups, cfg.GroupWindow)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.Groups = []int{1} },
		func(c *Config) { c.Groups = []int{-5} },
		func(c *Config) { c.Groups = []int{maxGroup + 1} },
		func(c *Config) { c.Groups, c.GroupSenders = []int{100, 3}, 4 },
		func(c *Config) { c.Groups, c.GroupSenders = []int{100}, 0 },
		func(c *Config) { c.Groups, c.GroupMsgs = []int{100}, 0 },
		func(c *Config) { c.Groups = []int{0} }, // nothing to do
	} {
		c := Defaults()
		c.Server, c.Pairs = "x:1", 0
		bad(&c)
		if err := check(&c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// An unbatched sender's MSG carries a client id, as qchat's own clients
// send: the server takes it for a well-formed id= option.
func TestAppendMsgClientID(t *testing.T) {
	line := appendMsgID(nil, 35, "1001", "abcdef", 123456789, 64, true)
	c, err := protocol.ParseCommand(line[:len(line)-1])
	if err != nil || c.Verb != "MSG" || c.ClientID != "abcdef.z" || c.Resend || c.Args[0] != "1001" || len(c.Args[1]) != 64 {
		t.Fatalf("%q parsed as %+v, %v", line, c, err)
	}
}

// TestSpreadNodes: with several servers, pair k's sender is on node k and
// its recipient on the next (every message crosses nodes, and each node
// holds as many senders as recipients); other clients go round in turn.
func TestSpreadNodes(t *testing.T) {
	for _, tc := range []struct {
		nodes int
		want  []int // nodes of s0, r0, s1, r1, s2, r2
	}{
		{1, []int{0, 0, 0, 0, 0, 0}},
		{2, []int{0, 1, 1, 0, 0, 1}},
		{3, []int{0, 1, 1, 2, 2, 0}},
	} {
		b := &bench{servers: make([]string, tc.nodes)}
		for i, want := range tc.want {
			if got := b.pairNode(i); got != want {
				t.Errorf("%d nodes: connection %d of the pairs on node %d, want %d", tc.nodes, i, got, want)
			}
			if i%2 == 1 && tc.nodes > 1 && b.pairNode(i) == b.pairNode(i-1) {
				t.Errorf("%d nodes: pair %d on one node", tc.nodes, i/2)
			}
			if got := b.roundNode(i); got != i%tc.nodes {
				t.Errorf("%d nodes: client %d on node %d", tc.nodes, i, got)
			}
		}
	}
}

// TestBenchLogsInOnEachNode: `qchat bench --server A,B --clients 4` logs
// the idle clients in on A and B in turn, each where the spread says.
func TestBenchLogsInOnEachNode(t *testing.T) {
	nodes := []*fakeserver.Server{fakeserver.New(t, "220 a qchat/1 ready"), fakeserver.New(t, "220 b qchat/1 ready")}
	cfg := Defaults()
	cfg.Server, cfg.Clients, cfg.Pairs, cfg.Connect, cfg.NoTLS = nodes[0].Addr()+","+nodes[1].Addr(), 4, 0, 1, true
	var stdout, stderr fakeserver.Buffer
	status := fakeserver.Async(func() int { return Run(context.Background(), cfg, &stdout, &stderr) })
	for i := range 4 {
		sc := nodes[i%2].Accept(t) // one login at a time (--connect 1), in order
		want := fmt.Sprintf("bench-i%d", i)
		reg := sc.Expect(t, "REG")
		if reg.Args[0] != want {
			t.Errorf("node %d: REG %q, want %s", i%2, reg.Args[0], want)
		}
		sc.Reply(t, reg.Tag, "201 "+strconv.Itoa(1000+i)+" "+want)
		sc.Answer(t, "USER", "331 password required")
		sc.Answer(t, "PASS", "230 "+strconv.Itoa(1000+i)+" "+want)
		sc.Answer(t, "TOKEN", "502 no tokens")
		sc.Answer(t, "PING", "200 pong login")
	}
	if got := fakeserver.Await(t, status); got != exitOK {
		t.Fatalf("exit status %d: %s", got, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "nodes:     2 nodes; pair i: sender on node i mod 2, recipient on the next node") ||
		!strings.Contains(out, "idle:      4 connections logged in") {
		t.Errorf("report:\n%s", out)
	}
}

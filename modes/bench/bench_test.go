package bench

import (
	"strings"
	"testing"
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

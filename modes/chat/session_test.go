package chat

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"qchat/modes/client"
	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

// Commands against a server played by the test.

func TestExecNeedsLogin(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	connect(t, a)
	for _, line := range []string{"/list", "/msg bob hi", "/send bob a.txt", "/accept 1001", "/profile"} {
		if err := a.exec(context.Background(), line); err == nil || !strings.Contains(err.Error(), "log in first") {
			t.Errorf("exec(%q) logged out: %v, want log in first", line, err)
		}
	}
}

func TestExecMessages(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	for _, tc := range []struct {
		line     string
		to, text string
		reply    string
		info     []string // the answer to INFO, when the client must ask for the nickname
		plain    string
		cur      string
	}{
		// Typed as a nickname: shown as typed until the server spells it.
		{"/msg bob hello  there", "bob", "hello  there", "250 7 stored 1001 " + fakeserver.WireTime, nil, "sent 7 to bob (1001) stored", "1001"},
		// A user never seen, by id: the client asks the nickname once.
		{"/msg 1002 " + "\x1b[31mred", "1002", "\x1b[31mred", "250 8 stored 1002 " + fakeserver.WireTime,
			[]string{"211-id 1002", "211-nick carol", "211 end"}, "sent 8 to carol (1002) stored", "1002"},
		{"/msg 1002 again", "1002", "again", "250 9 delivered 1002 " + fakeserver.WireTime, nil, "sent 9 to carol (1002) delivered", "1002"},
		{"a plain line goes to carol", "1002", "a plain line goes to carol", "250 10 delivered 1002 " + fakeserver.WireTime, nil, "sent 10 to carol (1002) delivered", "1002"},
		{"//etc is sent with one slash", "1002", "/etc is sent with one slash", "250 11 delivered 1002 " + fakeserver.WireTime, nil, "sent 11 to carol (1002) delivered", "1002"},
		{"  /MSG #dev to the group", "#dev", "to the group", "250 12 delivered #dev " + fakeserver.WireTime, nil, "sent 12 to #dev delivered", "#dev"},
		{"now to the group", "#dev", "now to the group", "250 13 stored #dev " + fakeserver.WireTime, nil, "sent 13 to #dev stored", "#dev"},
	} {
		done := execAsync(a, tc.line)
		cmd := sc.Expect(t, "MSG")
		if !slices.Equal(cmd.Args, []string{tc.to, tc.text}) {
			t.Errorf("%q: MSG %q, want %q", tc.line, cmd.Args, []string{tc.to, tc.text})
		}
		sc.Reply(t, cmd.Tag, tc.reply)
		if tc.info != nil {
			sc.Answer(t, "INFO", tc.info...)
		}
		if err := fakeserver.Await(t, done); err != nil {
			t.Errorf("%q: %v", tc.line, err)
		}
		if !strings.HasSuffix(out.String(), tc.plain+"\n") {
			t.Errorf("%q: printed %q, want %q", tc.line, out.String(), tc.plain)
		}
		a.mu.Lock()
		cur := a.cur
		a.mu.Unlock()
		if cur != tc.cur {
			t.Errorf("%q: current conversation %q, want %q", tc.line, cur, tc.cur)
		}
	}
	// A failed message keeps the current conversation.
	done := execAsync(a, "/msg nobody hi")
	cmd := sc.Expect(t, "MSG")
	sc.Reply(t, cmd.Tag, "550 no such user nobody")
	if err := fakeserver.Await(t, done); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("/msg nobody: %v", err)
	}
	if a.cur != "#dev" {
		t.Errorf("current conversation %q after a failed /msg", a.cur)
	}
	// Text that cannot go on the wire never does.
	if err := a.exec(context.Background(), "/msg bob "+strings.Repeat("x", 5000)); err == nil {
		t.Error("a text over the limit was sent")
	}
}

func TestPendingList(t *testing.T) {
	for _, jsonOut := range []bool{false, true} {
		a, out, _ := newTestApp(t, jsonOut)
		sc := connect(t, a)
		loginApp(t, a, sc)
		done := execAsync(a, "/pending")
		cmd := sc.Expect(t, "PENDING")
		sc.Reply(t, cmd.Tag,
			"210-friend 1001 bob",
			"210-invite 1002 carol #dev",
			"210-chat 1003 dave tkchat",
			"210-file 1001 bob tkfile 3 1024 my  photos/",
			"210-file 1004 evil tkevil 1 5 \x1b[31mred",
			"210-garbage",
			"210-friend bob 1001",
			"210 5 pending")
		if err := fakeserver.Await(t, done); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if fakeserver.TerminalUnsafeLines(got) != "" && !jsonOut {
			t.Errorf("plain /pending: %q: %s", got, fakeserver.TerminalUnsafeLines(got))
		}
		if strings.ContainsRune(got, 0x1b) {
			t.Errorf("/pending output holds a raw ESC: %q", got)
		}
		if !jsonOut {
			for _, want := range []string{
				"friend request from bob (1001)",
				"invite to #dev from carol (1002)",
				"direct chat request from dave (1003)",
				"offer of my  photos/ (3 files, 1.0 KiB) from bob (1001)",
				`offer of \x1b[31mred (1 file, 5 B) from evil (1004)`,
				"5 pending",
			} {
				if !strings.Contains(got, want+"\n") {
					t.Errorf("plain /pending %q lacks %q", got, want)
				}
			}
			continue
		}
		var rec struct {
			Type     string        `json:"type"`
			Requests []pendingItem `json:"requests"`
		}
		if err := json.Unmarshal([]byte(got), &rec); err != nil || rec.Type != "requests" {
			t.Fatalf("JSON /pending %q: %v", got, err)
		}
		want := []pendingItem{
			{Kind: "friend", From: 1001, FromNick: "bob"},
			{Kind: "invite", From: 1002, FromNick: "carol", Group: "#dev"},
			{Kind: "chat", From: 1003, FromNick: "dave"},
			{Kind: "file", From: 1001, FromNick: "bob", Name: "my  photos/", Files: 3, Size: 1024},
			{Kind: "file", From: 1004, FromNick: "evil", Name: "\x1b[31mred", Files: 1, Size: 5},
		}
		if !slices.Equal(rec.Requests, want) {
			t.Errorf("JSON /pending requests\n %+v, want\n %+v", rec.Requests, want)
		}
		// Who asked is now known by name.
		if id, ok := a.knownID("dave"); !ok || id != 1003 {
			t.Errorf("knownID(dave) = %d, %v after /pending", id, ok)
		}
	}
}

// pendingReply is what PENDING answers in the tests below.
var pendingReply = []string{
	"210-friend 1001 bob",
	"210-file 1001 bob tkfile 1 10 a.txt",
	"210-invite 1002 carol #dev",
	"210-chat 1003 dave tkchat",
	"210 4 pending",
}

func TestAcceptRejectPick(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	a.remember(1001, "bob")
	a.remember(1002, "carol")
	a.remember(1003, "dave")

	// Two requests from bob: the command says which.
	done := execAsync(a, "/accept bob")
	sc.Reply(t, sc.Expect(t, "PENDING").Tag, pendingReply...)
	if err := fakeserver.Await(t, done); err == nil || !strings.Contains(err.Error(), "several requests from bob (1001)") {
		t.Errorf("/accept bob: %v, want several requests", err)
	}

	for _, tc := range []struct {
		line  string
		verb  string
		args  []string
		reply string
		plain string
	}{
		{"/reject BOB file", "REJECT", []string{"file", "tkfile"}, "200 refused the file from 1001", "refused the offer of a.txt from bob (1001)"},
		{"/accept bob friend", "ACCEPT", []string{"friend", "1001"}, "200 1001 is now your friend", "bob (1001) is now your friend"},
		{"/reject 1003", "REJECT", []string{"chat", "tkchat"}, "200 refused the chat from 1003", "refused the direct chat from dave (1003)"},
		{"/accept carol #DEV", "ACCEPT", []string{"invite", "#dev"}, "200 joined #dev", "joined #dev"},
	} {
		done := execAsync(a, tc.line)
		sc.Reply(t, sc.Expect(t, "PENDING").Tag, pendingReply...)
		cmd := sc.Expect(t, tc.verb)
		if !slices.Equal(cmd.Args, tc.args) {
			t.Errorf("%q: %s %q, want %q", tc.line, tc.verb, cmd.Args, tc.args)
		}
		sc.Reply(t, cmd.Tag, tc.reply)
		if err := fakeserver.Await(t, done); err != nil {
			t.Errorf("%q: %v", tc.line, err)
		}
		if !strings.HasSuffix(out.String(), tc.plain+"\n") {
			t.Errorf("%q: printed %q, want %q last", tc.line, out.String(), tc.plain)
		}
	}
	if a.cur != "#dev" {
		t.Errorf("after accepting the invite the current conversation is %q", a.cur)
	}

	for _, tc := range []struct{ line, want string }{
		{"/accept dave file", "nothing from dave (1003) waits"},
		{"/reject carol #other", "nothing from carol (1002) waits"},
		{"/accept 1009", "nothing from eve (1009) waits"},
	} {
		done := execAsync(a, tc.line)
		if strings.Contains(tc.line, "1009") { // not known yet: its nickname is asked
			sc.Answer(t, "INFO", "211-id 1009", "211-nick eve", "211 end")
		}
		sc.Reply(t, sc.Expect(t, "PENDING").Tag, pendingReply...)
		if err := fakeserver.Await(t, done); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
	}
	// A bad group name is refused before anything is asked.
	if err := a.exec(context.Background(), "/accept carol #no/slash"); err == nil {
		t.Error("a bad group name was taken")
	}
}

func TestOfferAndCancelEvents(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	chat := client.OfferEvent{Ticket: "tkchat", From: 1001, FromNick: "bob", Purpose: "chat"}
	file := client.OfferEvent{Ticket: "tkfile", From: 1001, FromNick: "bob", Purpose: "file", Count: 1, Bytes: 10, Name: "\x1b[31ma.txt"}
	a.onOffer(chat)
	a.onOffer(file)
	got := out.String()
	if !strings.Contains(got, "bob (1001) wants a direct chat: /accept 1001 or /reject 1001") ||
		!strings.Contains(got, `bob (1001) offers \x1b[31ma.txt (1 file, 10 B)`) || strings.ContainsRune(got, 0x1b) {
		t.Errorf("offers printed %q", got)
	}
	if len(a.links.offers) != 2 || a.nickOf(1001) != "bob" {
		t.Errorf("offers kept %v, bob known as %q", a.links.offers, a.nickOf(1001))
	}
	a.onCancel("tkfile", "timeout")
	a.onCancel("tkchat", "gone")
	a.onCancel("unknown", "timeout") // an offer never seen: nothing to say
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], `the offer of \x1b[31ma.txt from bob (1001) timed out`) ||
		!strings.Contains(lines[3], "the direct chat request from bob (1001) was withdrawn") {
		t.Errorf("cancels printed %q", lines)
	}
	if len(a.links.offers) != 0 {
		t.Errorf("offers kept after their cancel: %v", a.links.offers)
	}
	// Events seen are what /wait looks at.
	if err := a.exec(context.Background(), "/wait withdrawn"); err != nil {
		t.Errorf("/wait withdrawn: %v", err)
	}

	// With no room for another chat, a chat request is refused at once.
	a.cfg.MaxChats = 0
	a.onOffer(client.OfferEvent{Ticket: "tk2", From: 1002, FromNick: "carol", Purpose: "chat"})
	cmd := sc.Expect(t, "REJECT")
	if !slices.Equal(cmd.Args, []string{"chat", "tk2"}) {
		t.Errorf("REJECT %q", cmd.Args)
	}
	sc.Reply(t, cmd.Tag, "200 refused the chat from 1002")
	a.links.bg.Wait()
	if !strings.Contains(out.String(), "refused a direct chat from carol (1002): 0 direct chats are open already") {
		t.Errorf("printed %q", out.String())
	}
	if _, ok := a.links.offers["tk2"]; ok {
		t.Error("a refused chat request is still pending")
	}
}

func TestWait(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.note("* bob (1001) is online")
	a.note("[10:00:00] bob (1001): hello")
	if err := a.exec(context.Background(), "/wait bob.*hello"); err != nil {
		t.Errorf("/wait for a line printed before: %v", err)
	}
	// The same line does not match twice: it waits for the next.
	done := execAsync(a, "/wait hello")
	a.note("* carol (1002) is online")
	a.note("[10:00:01] bob (1001): hello again")
	if err := fakeserver.Await(t, done); err != nil {
		t.Errorf("/wait for a line printed later: %v", err)
	}
	if err := a.exec(context.Background(), "/wait ("); err == nil {
		t.Error("a bad regexp was taken")
	}
	// The connection's end ends the wait.
	done = execAsync(a, "/wait never")
	a.mu.Lock()
	a.eventsDone = true
	a.seenCond.Broadcast()
	a.mu.Unlock()
	if err := fakeserver.Await(t, done); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Errorf("/wait after the end: %v", err)
	}
}

func TestWaitTimesOut(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.cfg.Timeout = 20 * time.Millisecond // this test is about the timeout
	if err := fakeserver.Await(t, execAsync(a, "/wait never")); err == nil || !strings.Contains(err.Error(), "nothing matched") {
		t.Errorf("/wait: %v, want nothing matched", err)
	}
}

func TestListPrintsUsersSafely(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	done := execAsync(a, "/list")
	sc.Reply(t, sc.Expect(t, "LIST").Tag,
		"210-1000 alice online",
		"210-1001 bob away "+"\x1b[2Jgone\u202e",
		"210 2 online")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	want := "alice (1000) online\nbob (1001) away: \\x1b[2Jgone\\u202e\n2 online\n"
	if got := out.String(); got != want {
		t.Errorf("/list printed %q, want %q", got, want)
	}
	if a.nickOf(1001) != "bob" {
		t.Error("/list did not note bob")
	}
}

// /list escapes each user's state word, as /friends, /find and /members
// do: reply text is not checked for control characters by the line
// parser, so a LIST line "210-1001 bob \x1b[2Jonline" from a buggy or
// hostile server must not reach the terminal raw.
func TestListEscapesState(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	done := execAsync(a, "/list")
	sc.Reply(t, sc.Expect(t, "LIST").Tag, "210-1001 bob \x1b[2Jonline\u202e", "210 1 online")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	if why := fakeserver.TerminalUnsafeLines(out.String()); why != "" {
		t.Errorf("/list printed %q: %s", out.String(), why)
	}
}

func TestFriendsAndMembersEscape(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	done := execAsync(a, "/friends")
	sc.Reply(t, sc.Expect(t, "FRIENDS").Tag, "210-1001 bob \x1b[2Jonline\u202e status\x07", "210 1 friends")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	done = execAsync(a, "/members dev")
	cmd := sc.Expect(t, "MEMBERS")
	if !slices.Equal(cmd.Args, []string{"#dev"}) {
		t.Errorf("MEMBERS %q", cmd.Args)
	}
	sc.Reply(t, cmd.Tag, "210-1001 bob \x1b[2Jonline owner", "210-1002 carol offline member", "210 2 members of #dev")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if why := fakeserver.TerminalUnsafeLines(got); why != "" {
		t.Errorf("printed %q: %s", got, why)
	}
	for _, want := range []string{`bob (1001) \x1b[2Jonline\u202e: status\x07`, "1 friends", `bob (1001) \x1b[2Jonline, owner`, "carol (1002) offline", "2 members of #dev"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("printed %q, lacks %q", got, want)
		}
	}
}

// Run, piped, against the fake server: log in with --user, run each
// line, say which failed, log out.
func TestRunPiped(t *testing.T) {
	s := fakeserver.New(t, fakeserver.Greeting)
	var stdout, stderr fakeserver.Buffer
	cfg := Config{Server: s.Addr(), User: "alice", Password: "pw", NoHistory: true, Timeout: fakeserver.Guard, NoTLS: true,
		PeerListen: "127.0.0.1:0", MaxChats: 8, Dir: t.TempDir(), ReadyFile: filepath.Join(t.TempDir(), "ready")}
	stdin := strings.NewReader("# a comment\n\n/msg bob hi there\n/nope\n/msg bob second\n")
	status := fakeserver.Async(func() int { return Run(context.Background(), cfg, stdin, &stdout, &stderr) })
	sc := s.Accept(t)
	cmd := sc.Expect(t, "USER")
	sc.Reply(t, cmd.Tag, "331 password required")
	cmd = sc.Expect(t, "PASS")
	sc.Reply(t, cmd.Tag, "230 1000 alice")
	sc.Answer(t, "LINKKEY", "200 link key set")     // the peer listener's key
	sc.Answer(t, "ENDPOINTS", "200 127.0.0.1:5555") // and what the server sees of it
	cmd = sc.Expect(t, "MSG")
	sc.Send(t, "MSG 7 1001 bob "+fakeserver.WireTime+" \x1b[31mhello back")
	sc.Reply(t, cmd.Tag, "250 8 stored 1001 "+fakeserver.WireTime)
	// The event loop acknowledges while the commands go on: the ACK and
	// the next request come in either order.
	acked := false
	for cmd.Args[1] != "second" || !acked {
		l := sc.Next(t)
		if l == "ACK 7" {
			acked = true
			continue
		}
		var err error
		if cmd, err = protocol.ParseCommand([]byte(l)); err != nil || cmd.Verb != "MSG" {
			t.Fatalf("read %q, want ACK 7 or the second MSG", l)
		}
	}
	sc.Reply(t, cmd.Tag, "250 9 stored 1001 "+fakeserver.WireTime)
	cmd = sc.Expect(t, "QUIT")
	sc.Reply(t, cmd.Tag, "221 bye")
	sc.EOF(t)
	if got := fakeserver.Await(t, status); got != 1 {
		t.Errorf("exit status %d, want 1 (/nope failed)", got)
	}
	out := stdout.String()
	for _, want := range []string{"sent 8 to bob (1001) stored", `bob (1001): \x1b[31mhello back`, "sent 9 to bob (1001) stored"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q lacks %q", out, want)
		}
	}
	if why := fakeserver.TerminalUnsafeLines(out); why != "" {
		t.Errorf("stdout %q: %s", out, why)
	}
	if got := stderr.String(); got != "qchat: /nope: unknown command /nope (try /help)\n" {
		t.Errorf("stderr %q", got)
	}
	if b, err := os.ReadFile(cfg.ReadyFile); err != nil || string(b) != "1000\n" {
		t.Errorf("ready file %q, %v", b, err)
	}
}

func TestRunNeedsServer(t *testing.T) {
	var stdout, stderr fakeserver.Buffer
	if got := Run(context.Background(), Config{NoDiscovery: true}, strings.NewReader(""), &stdout, &stderr); got != 2 {
		t.Errorf("exit status %d, want 2", got)
	}
	if !strings.Contains(stderr.String(), "no server") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// With --json, /send's notes ("* offering ... to ...", "* not sent: ...",
// retries) are "note" objects, never "null" lines: the README says every
// line is one JSON object with a "type".
func TestRunPipedJSONSendPrintsOnlyObjects(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(file, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := fakeserver.New(t, fakeserver.Greeting)
	var stdout, stderr fakeserver.Buffer
	cfg := Config{Server: s.Addr(), User: "alice", Password: "pw", NoHistory: true, Timeout: fakeserver.Guard, NoTLS: true, JSON: true,
		PeerListen: "127.0.0.1:0", MaxChats: 8, Dir: dir}
	status := fakeserver.Async(func() int {
		return Run(context.Background(), cfg, strings.NewReader("/send 1001 "+file+"\n"), &stdout, &stderr)
	})
	sc := s.Accept(t)
	sc.Reply(t, sc.Expect(t, "USER").Tag, "331 password required")
	sc.Reply(t, sc.Expect(t, "PASS").Tag, "230 1000 alice")
	sc.Answer(t, "LINKKEY", "200 link key set")
	sc.Answer(t, "ENDPOINTS", "200 127.0.0.1:5555")
	sc.Answer(t, "INFO", "211-id 1001", "211-nick bob", "211 end")
	sc.Reply(t, sc.Expect(t, "FILE").Tag, "551 refused by bob")
	sc.Reply(t, sc.Expect(t, "QUIT").Tag, "221 bye")
	sc.Close()
	if got := fakeserver.Await(t, status); got != 1 {
		t.Errorf("exit status %d, want 1", got)
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["type"] == nil {
			t.Errorf("--json output line %q is not an object with a type", l)
		}
	}
}

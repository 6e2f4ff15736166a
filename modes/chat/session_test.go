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
		plain    string
		cur      string
	}{
		{"/msg bob hello  there", "bob", "hello  there", "250 7 stored 1001 " + wireTime, "sent 7 to 1001 stored", "1001"},
		{"a plain line goes to bob", "1001", "a plain line goes to bob", "250 8 delivered 1001 " + wireTime, "sent 8 to 1001 delivered", "1001"},
		{"//etc is sent with one slash", "1001", "/etc is sent with one slash", "250 9 delivered 1001 " + wireTime, "sent 9 to 1001 delivered", "1001"},
		{"  /MSG #dev to the group", "#dev", "to the group", "250 10 delivered #dev " + wireTime, "sent 10 to #dev delivered", "#dev"},
		{"now to the group", "#dev", "now to the group", "250 11 stored #dev " + wireTime, "sent 11 to #dev stored", "#dev"},
		{"/msg 1002 " + "\x1b[31mred", "1002", "\x1b[31mred", "250 12 stored 1002 " + wireTime, "sent 12 to 1002 stored", "1002"},
	} {
		done := execAsync(a, tc.line)
		cmd := sc.expect(t, "MSG")
		if !slices.Equal(cmd.Args, []string{tc.to, tc.text}) {
			t.Errorf("%q: MSG %q, want %q", tc.line, cmd.Args, []string{tc.to, tc.text})
		}
		sc.reply(t, cmd.Tag, tc.reply)
		if err := await(t, done); err != nil {
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
	cmd := sc.expect(t, "MSG")
	sc.reply(t, cmd.Tag, "550 no such user nobody")
	if err := await(t, done); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("/msg nobody: %v", err)
	}
	if a.cur != "1002" {
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
		cmd := sc.expect(t, "PENDING")
		sc.reply(t, cmd.Tag,
			"210-friend 1001 bob",
			"210-invite 1002 carol #dev",
			"210-chat 1003 dave tkchat",
			"210-file 1001 bob tkfile 3 1024 my  photos/",
			"210-file 1004 evil tkevil 1 5 \x1b[31mred",
			"210-garbage",
			"210-friend bob 1001",
			"210 5 pending")
		if err := await(t, done); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if terminalUnsafe(got) != "" && !jsonOut {
			t.Errorf("plain /pending: %q: %s", got, terminalUnsafe(got))
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
			Type     string          `json:"type"`
			Requests []pendingRecord `json:"requests"`
		}
		if err := json.Unmarshal([]byte(got), &rec); err != nil || rec.Type != "pending" {
			t.Fatalf("JSON /pending %q: %v", got, err)
		}
		want := []pendingRecord{
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
	sc.reply(t, sc.expect(t, "PENDING").Tag, pendingReply...)
	if err := await(t, done); err == nil || !strings.Contains(err.Error(), "several requests from bob (1001)") {
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
		{"/accept bob friend", "ACCEPT", []string{"friend", "1001"}, "200 1001 is now your friend", "1001 is now your friend"},
		{"/reject 1003", "REJECT", []string{"chat", "tkchat"}, "200 refused the chat from 1003", "refused the direct chat from dave (1003)"},
		{"/accept carol #DEV", "ACCEPT", []string{"invite", "#dev"}, "200 joined #dev", "joined #dev"},
	} {
		done := execAsync(a, tc.line)
		sc.reply(t, sc.expect(t, "PENDING").Tag, pendingReply...)
		cmd := sc.expect(t, tc.verb)
		if !slices.Equal(cmd.Args, tc.args) {
			t.Errorf("%q: %s %q, want %q", tc.line, tc.verb, cmd.Args, tc.args)
		}
		sc.reply(t, cmd.Tag, tc.reply)
		if err := await(t, done); err != nil {
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
		{"/accept 1009", "nothing from 1009 waits"},
	} {
		done := execAsync(a, tc.line)
		sc.reply(t, sc.expect(t, "PENDING").Tag, pendingReply...)
		if err := await(t, done); err == nil || !strings.Contains(err.Error(), tc.want) {
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
	cmd := sc.expect(t, "REJECT")
	if !slices.Equal(cmd.Args, []string{"chat", "tk2"}) {
		t.Errorf("REJECT %q", cmd.Args)
	}
	sc.reply(t, cmd.Tag, "200 refused the chat from 1002")
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
	if err := await(t, done); err != nil {
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
	if err := await(t, done); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Errorf("/wait after the end: %v", err)
	}
}

func TestWaitTimesOut(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.cfg.Timeout = 20 * time.Millisecond // this test is about the timeout
	if err := await(t, execAsync(a, "/wait never")); err == nil || !strings.Contains(err.Error(), "nothing matched") {
		t.Errorf("/wait: %v, want nothing matched", err)
	}
}

func TestListPrintsUsersSafely(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	done := execAsync(a, "/list")
	sc.reply(t, sc.expect(t, "LIST").Tag,
		"210-1000 alice online",
		"210-1001 bob away "+"\x1b[2Jgone\u202e",
		"210 2 online")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	want := "1000 alice online\n1001 bob away \\x1b[2Jgone\\u202e\n2 online\n"
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
	sc.reply(t, sc.expect(t, "LIST").Tag, "210-1001 bob \x1b[2Jonline\u202e", "210 1 online")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	if why := terminalUnsafe(out.String()); why != "" {
		t.Errorf("/list printed %q: %s", out.String(), why)
	}
}

func TestFriendsAndMembersEscape(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	done := execAsync(a, "/friends")
	sc.reply(t, sc.expect(t, "FRIENDS").Tag, "210-1001 bob \x1b[2Jonline\u202e status\x07", "210 1 friends")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	done = execAsync(a, "/members dev")
	cmd := sc.expect(t, "MEMBERS")
	if !slices.Equal(cmd.Args, []string{"#dev"}) {
		t.Errorf("MEMBERS %q", cmd.Args)
	}
	sc.reply(t, cmd.Tag, "210-1001 bob \x1b[2Jonline owner", "210-1002 carol offline member", "210 2 members of #dev")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if why := terminalUnsafe(got); why != "" {
		t.Errorf("printed %q: %s", got, why)
	}
	for _, want := range []string{`1001 bob \x1b[2Jonline\u202e status\x07`, "1 friends", `1001 bob \x1b[2Jonline (owner)`, "1002 carol offline", "2 members of #dev"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("printed %q, lacks %q", got, want)
		}
	}
}

// Run, piped, against the fake server: log in with --user, run each
// line, say which failed, log out.
func TestRunPiped(t *testing.T) {
	s := newFakeServer(t, "220 test qchat/1 ready")
	var stdout, stderr syncBuffer
	cfg := Config{Server: s.addr(), User: "alice", Password: "pw", NoHistory: true, Timeout: guard,
		PeerListen: "127.0.0.1:0", MaxChats: 8, Dir: t.TempDir(), ReadyFile: filepath.Join(t.TempDir(), "ready")}
	stdin := strings.NewReader("# a comment\n\n/msg bob hi there\n/nope\n/msg bob second\n")
	status := async(func() int { return Run(context.Background(), cfg, stdin, &stdout, &stderr) })
	sc := s.accept(t)
	cmd := sc.expect(t, "USER")
	sc.reply(t, cmd.Tag, "331 password required")
	cmd = sc.expect(t, "PASS")
	sc.reply(t, cmd.Tag, "230 1000 alice")
	cmd = sc.expect(t, "MSG")
	sc.send(t, "MSG 7 1001 bob "+wireTime+" \x1b[31mhello back")
	sc.reply(t, cmd.Tag, "250 8 stored 1001 "+wireTime)
	// The event loop acknowledges while the commands go on: the ACK and
	// the next request come in either order.
	acked := false
	for cmd.Args[1] != "second" || !acked {
		l := sc.next(t)
		if l == "ACK 7" {
			acked = true
			continue
		}
		var err error
		if cmd, err = protocol.ParseCommand([]byte(l)); err != nil || cmd.Verb != "MSG" {
			t.Fatalf("read %q, want ACK 7 or the second MSG", l)
		}
	}
	sc.reply(t, cmd.Tag, "250 9 stored 1001 "+wireTime)
	cmd = sc.expect(t, "QUIT")
	sc.reply(t, cmd.Tag, "221 bye")
	sc.eof(t)
	if got := await(t, status); got != 1 {
		t.Errorf("exit status %d, want 1 (/nope failed)", got)
	}
	out := stdout.String()
	for _, want := range []string{"sent 8 to 1001 stored", `bob (1001): \x1b[31mhello back`, "sent 9 to 1001 stored"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q lacks %q", out, want)
		}
	}
	if why := terminalUnsafe(out); why != "" {
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
	var stdout, stderr syncBuffer
	if got := Run(context.Background(), Config{}, strings.NewReader(""), &stdout, &stderr); got != 2 {
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
	s := newFakeServer(t, "220 test qchat/1 ready")
	var stdout, stderr syncBuffer
	cfg := Config{Server: s.addr(), User: "alice", Password: "pw", NoHistory: true, Timeout: guard, JSON: true,
		PeerListen: "127.0.0.1:0", MaxChats: 8, Dir: dir}
	status := async(func() int {
		return Run(context.Background(), cfg, strings.NewReader("/send 1001 "+file+"\n"), &stdout, &stderr)
	})
	sc := s.accept(t)
	sc.reply(t, sc.expect(t, "USER").Tag, "331 password required")
	sc.reply(t, sc.expect(t, "PASS").Tag, "230 1000 alice")
	sc.reply(t, sc.expect(t, "FILE").Tag, "551 refused by bob")
	sc.reply(t, sc.expect(t, "QUIT").Tag, "221 bye")
	sc.c.Close()
	if got := await(t, status); got != 1 {
		t.Errorf("exit status %d, want 1", got)
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["type"] == nil {
			t.Errorf("--json output line %q is not an object with a type", l)
		}
	}
}

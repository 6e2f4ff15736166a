package recv

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qchat/modes/client"
	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

func fileOffer(from int64, nick string, count int, size int64, name string) client.OfferEvent {
	return client.OfferEvent{Ticket: "tk", From: from, FromNick: nick, Purpose: "file", Count: count, Bytes: size, Name: name}
}

func TestRefusal(t *testing.T) {
	chat := client.OfferEvent{Ticket: "tk", From: 1001, FromNick: "bob", Purpose: "chat"}
	small := fileOffer(1001, "bob", 1, 1024, "a.txt")
	big := fileOffer(1001, "bob", 3, 5<<20, "3 files")
	for _, tc := range []struct {
		name string
		cfg  Config
		o    client.OfferEvent
		want string // "" takes the offer
	}{
		{"file with --dir", Config{Dir: "in"}, small, ""},
		{"no --dir refuses", Config{}, small, "no --dir to save files in"},
		{"chats are refused", Config{Dir: "in"}, chat, "qchat recv takes files, not chats"},
		{"chats are refused without --dir too", Config{}, chat, "qchat recv takes files, not chats"},
		{"chats from --from too", Config{Dir: "in", From: []string{"bob"}}, chat, "qchat recv takes files, not chats"},
		{"unknown purpose", Config{Dir: "in"}, client.OfferEvent{From: 1001, Purpose: "voice"}, "qchat recv takes files, not chats"},
		{"--from by id", Config{Dir: "in", From: []string{"1001"}}, small, ""},
		{"--from by nickname", Config{Dir: "in", From: []string{"bob"}}, small, ""},
		{"--from by nickname in any case", Config{Dir: "in", From: []string{"BoB"}}, small, ""},
		{"--from non-ASCII nickname in any case", Config{Dir: "in", From: []string{"élodie"}}, fileOffer(1003, "ÉLODIE", 1, 1, "x"), ""},
		{"--from among several", Config{Dir: "in", From: []string{"alice", "1002", "bob"}}, small, ""},
		{"not in --from", Config{Dir: "in", From: []string{"alice", "1002"}}, small, "not in --from"},
		{"--from id is not a nickname", Config{Dir: "in", From: []string{"1002"}}, fileOffer(1001, "1002x", 1, 1, "x"), "not in --from"},
		{"--from is not a prefix", Config{Dir: "in", From: []string{"bo"}}, small, "not in --from"},
		{"no --dir comes before --from", Config{From: []string{"alice"}}, small, "no --dir to save files in"},
		{"--max-size takes its size", Config{Dir: "in", MaxSize: 1024}, small, ""},
		{"--max-size refuses more", Config{Dir: "in", MaxSize: 1023}, small, "1.0 KiB is more than --max-size 1023 B"},
		{"--max-size counts all files", Config{Dir: "in", MaxSize: 1 << 20}, big, "5.0 MiB is more than --max-size 1.0 MiB"},
		{"no --max-size: no cap", Config{Dir: "in"}, fileOffer(1001, "bob", 100000, 1<<62, "huge/"), ""},
		{"--from before --max-size", Config{Dir: "in", From: []string{"alice"}, MaxSize: 1}, big, "not in --from"},
		{"--from and --max-size both pass", Config{Dir: "in", From: []string{"bob"}, MaxSize: 5 << 20}, big, ""},
	} {
		r := &receiver{cfg: tc.cfg}
		if got := r.refusal(tc.o); got != tc.want {
			t.Errorf("%s: refusal = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	o := fileOffer(1001, "Bob", 1, 1, "x")
	for _, tc := range []struct {
		from []string
		want bool
	}{
		{[]string{"1001"}, true},
		{[]string{"bob"}, true},
		{[]string{"BOB"}, true},
		{[]string{"Bob"}, true},
		{[]string{"alice", "bob"}, true},
		{[]string{"1000", "1001"}, true},
		{[]string{"1002"}, false},
		{[]string{"alice"}, false},
		{[]string{"bobby"}, false},
		{[]string{"1001 "}, false},
		{[]string{""}, false},
		{nil, false},
	} {
		r := &receiver{cfg: Config{From: tc.from}}
		if got := r.allowed(o); got != tc.want {
			t.Errorf("allowed with --from %q = %v, want %v", tc.from, got, tc.want)
		}
	}
}

func TestOfferWhat(t *testing.T) {
	for _, tc := range []struct {
		o    client.OfferEvent
		want string
	}{
		{client.OfferEvent{Purpose: "chat", Name: "ignored"}, "a direct chat"},
		{fileOffer(1001, "bob", 1, 2<<20, "photo.jpg"), "photo.jpg (1 file, 2.0 MiB)"},
		{fileOffer(1001, "bob", 12, 30<<20, "album/"), "album/ (12 files, 30.0 MiB)"},
		{fileOffer(1001, "bob", 3, 10, "3 files"), "3 files (10 B)"},
		{fileOffer(1001, "bob", 1, 10, "\x1b[31mevil\u202egpj.exe"), `\x1b[31mevil\u202egpj.exe (1 file, 10 B)`},
	} {
		got := offerWhat(tc.o)
		if got != tc.want {
			t.Errorf("offerWhat(%+v) = %q, want %q", tc.o, got, tc.want)
		}
		if why := fakeserver.TerminalUnsafeLines(got); why != "" {
			t.Errorf("offerWhat(%+v) = %q: %s", tc.o, got, why)
		}
	}
}

// startReceiver runs a receiver (no peer listener) against a fake server.
func startReceiver(t *testing.T, cfg Config) (s *fakeserver.Server, stdout, stderr *fakeserver.Buffer, status <-chan int) {
	t.Helper()
	s = fakeserver.New(t, fakeserver.Greeting)
	cfg.Server, cfg.User, cfg.DialTimeout, cfg.NoTLS = s.Addr(), "bob", fakeserver.Guard, true // the fake server speaks clear text
	stdout, stderr = &fakeserver.Buffer{}, &fakeserver.Buffer{}
	r := &receiver{cfg: cfg, pw: "pw", out: client.NewPrinter(stdout, cfg.JSON), stderr: stderr}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	status = fakeserver.Async(func() int { return r.run(ctx) })
	return s, stdout, stderr, status
}

// loginAs plays the server's side of bob's login.
func loginAs(t *testing.T, sc *fakeserver.Conn) {
	t.Helper()
	if user, pw := sc.Login(t, 1001, "bob"); user != "bob" || pw != "pw" {
		t.Errorf("logged in as %q with %q, want bob, pw", user, pw)
	}
}

// answers reads n answers to offers, in whatever order the receiver sends
// them, replies to each, and returns them as "VERB purpose ticket".
func answers(t *testing.T, sc *fakeserver.Conn, n int, reply func(cmd protocol.Command) string) []string {
	t.Helper()
	var got []string
	for range n {
		raw := sc.Next(t)
		cmd, err := protocol.ParseCommand([]byte(raw))
		if err != nil || (cmd.Verb != "ACCEPT" && cmd.Verb != "REJECT") || len(cmd.Args) != 2 {
			t.Fatalf("read %q, want an ACCEPT or REJECT", raw)
		}
		got = append(got, cmd.Verb+" "+cmd.Args[0]+" "+cmd.Args[1])
		sc.Reply(t, cmd.Tag, reply(cmd))
	}
	slices.Sort(got)
	return got
}

func refuse(cmd protocol.Command) string { return "200 refused the " + cmd.Args[0] }

func TestReceiveCountsMessagesOnce(t *testing.T) {
	s, stdout, stderr, status := startReceiver(t, Config{Count: 2, NoHistory: true})
	sc := s.Accept(t)
	loginAs(t, sc)
	sc.Send(t,
		"OFFER tk1 1000 alice "+fakeserver.WireTime+" chat",
		"OFFER tk2 1000 alice "+fakeserver.WireTime+" file 1 10 a.txt", // no --dir
		"OFFER tk3 1000 alice "+fakeserver.WireTime+" file 1 10",       // malformed: ignored
	)
	if got, want := answers(t, sc, 2, refuse), []string{"REJECT chat tk1", "REJECT file tk2"}; !slices.Equal(got, want) {
		t.Errorf("answers %q, want %q", got, want)
	}
	sc.Send(t,
		"NUDGE 1000 alice "+fakeserver.WireTime,
		"PRESENCE 1000 alice online",
		"MSG 7 1000 alice "+fakeserver.WireTime+" hello \x1b[31mbob",
		"MSG 7 1000 alice "+fakeserver.WireTime+" hello \x1b[31mbob", // again: acknowledged, not shown
		"REQUEST 8 1000 alice "+fakeserver.WireTime+" friend",        // shown, not counted
		"GMSG 9 1000 alice "+fakeserver.WireTime+" #dev to the group",
	)
	for _, want := range []string{"ACK 7", "ACK 7", "ACK 8", "ACK 9"} {
		if got := sc.Next(t); got != want {
			t.Errorf("read %q, want %q", got, want)
		}
	}
	cmd := sc.Expect(t, "QUIT")
	sc.Reply(t, cmd.Tag, "221 bye")
	sc.EOF(t)
	if got := fakeserver.Await(t, status); got != exitOK {
		t.Errorf("exit status %d, want %d; stderr %q", got, exitOK, stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "hello") != 1 || !strings.Contains(out, `alice (1000): hello \x1b[31mbob`) {
		t.Errorf("stdout %q: want the message once, escaped", out)
	}
	for _, want := range []string{"nudged you", "wants to be your friend", "#dev alice (1000): to the group"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q lacks %q", out, want)
		}
	}
	if why := fakeserver.TerminalUnsafeLines(out); why != "" {
		t.Errorf("stdout %q: %s", out, why)
	}
	errs := stderr.String()
	for _, want := range []string{
		"refused a direct chat from alice (1000): qchat recv takes files, not chats",
		"refused a.txt (1 file, 10 B) from alice (1000): no --dir to save files in",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
	}
}

// With --dir, --from and --max-size, the allowed offer is accepted and
// the others refused. (No peer listener here: the accepted offer's link
// fails, which recv reports and survives.)
func TestReceiveAnswersOffersByRule(t *testing.T) {
	s, stdout, stderr, status := startReceiver(t, Config{Count: 1, NoHistory: true, Dir: t.TempDir(), From: []string{"ALICE"}, MaxSize: 100})
	sc := s.Accept(t)
	loginAs(t, sc)
	sc.Send(t,
		"OFFER tk1 1000 alice "+fakeserver.WireTime+" file 1 100 ok.txt",
		"OFFER tk2 1000 alice "+fakeserver.WireTime+" file 2 101 2 files",
		"OFFER tk3 1002 mallory "+fakeserver.WireTime+" file 1 1 evil\u202etxt.exe",
		"OFFER tk4 1000 alice "+fakeserver.WireTime+" chat",
	)
	got := answers(t, sc, 4, func(cmd protocol.Command) string {
		if cmd.Verb == "ACCEPT" {
			return "260 " + cmd.Args[1] + " 1000 192.0.2.7:5000 2026-11-22T10:02:00.000Z SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk s3cr3t"
		}
		return refuse(cmd)
	})
	want := []string{"ACCEPT file tk1", "REJECT chat tk4", "REJECT file tk2", "REJECT file tk3"}
	if !slices.Equal(got, want) {
		t.Errorf("answers %q, want %q", got, want)
	}
	sc.Send(t, "MSG 7 1000 alice "+fakeserver.WireTime+" done")
	if got := sc.Next(t); got != "ACK 7" {
		t.Errorf("read %q, want ACK 7", got)
	}
	cmd := sc.Expect(t, "QUIT")
	sc.Reply(t, cmd.Tag, "221 bye")
	sc.EOF(t)
	if got := fakeserver.Await(t, status); got != exitOK {
		t.Errorf("exit status %d; stderr %q", got, stderr.String())
	}
	errs := stderr.String()
	for _, want := range []string{
		"refused 2 files (101 B) from alice (1000): 101 B is more than --max-size 100 B",
		`refused evil\u202etxt.exe (1 file, 1 B) from mallory (1002): not in --from`,
		"refused a direct chat from alice (1000)",
		"ok.txt (1 file, 100 B) from alice (1000): no peer listener",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
	}
	if why := fakeserver.TerminalUnsafeLines(errs); why != "" {
		t.Errorf("stderr %q: %s", errs, why)
	}
	if !strings.Contains(stdout.String(), "done") {
		t.Errorf("stdout %q", stdout.String())
	}
}

// A connection that drops is made again; a message seen before the drop
// (its ACK lost with the connection) is not shown or counted twice.
func TestReceiveReconnects(t *testing.T) {
	s, stdout, stderr, status := startReceiver(t, Config{Count: 2, NoHistory: true, JSON: true})
	sc := s.Accept(t)
	loginAs(t, sc)
	sc.Send(t, "MSG 7 1000 alice "+fakeserver.WireTime+" first")
	if got := sc.Next(t); got != "ACK 7" {
		t.Errorf("read %q", got)
	}
	sc.Close()
	sc = s.Accept(t)
	loginAs(t, sc)
	sc.Send(t, "MSG 7 1000 alice "+fakeserver.WireTime+" first", "MSG 8 1000 alice "+fakeserver.WireTime+" second")
	for _, want := range []string{"ACK 7", "ACK 8"} {
		if got := sc.Next(t); got != want {
			t.Errorf("read %q, want %q", got, want)
		}
	}
	sc.Reply(t, sc.Expect(t, "QUIT").Tag, "221 bye")
	sc.Close()
	if got := fakeserver.Await(t, status); got != exitOK {
		t.Errorf("exit status %d; stderr %q", got, stderr.String())
	}
	// The messages once each, and between them the connection's story.
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var rec struct{ Type, Text, State, Server string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		switch rec.Type {
		case "msg":
			got = append(got, rec.Text)
		case "connection":
			if rec.Server != s.Addr() {
				t.Errorf("connection record %q names another server", l)
			}
			if rec.State != "reconnecting" {
				got = append(got, rec.State)
			}
		}
	}
	if want := []string{"first", "lost", "back", "second"}; !slices.Equal(got, want) {
		t.Errorf("stdout holds %q, want %q", got, want)
	}
	errs := stderr.String()
	if !strings.Contains(errs, "connection to "+s.Addr()+" lost (the server closed the connection); reconnecting") ||
		!strings.Contains(errs, "reconnected: back on "+s.Addr()) {
		t.Errorf("stderr %q does not say it lost the connection and got it back", errs)
	}
}

func TestReceiveLoginRefusedIsFinal(t *testing.T) {
	s, _, stderr, status := startReceiver(t, Config{Count: 1, NoHistory: true})
	sc := s.Accept(t)
	sc.Reply(t, sc.Expect(t, "USER").Tag, "331 password required")
	sc.Reply(t, sc.Expect(t, "PASS").Tag, "535 login incorrect")
	sc.EOF(t)
	if got := fakeserver.Await(t, status); got != exitFailed {
		t.Errorf("exit status %d, want %d", got, exitFailed)
	}
	if !strings.Contains(stderr.String(), "login: 535 login incorrect") {
		t.Errorf("stderr %q", stderr.String())
	}
	select {
	case <-s.Conns():
		t.Error("a refused login was tried again")
	default:
	}
}

// With history, a message shown by one run is not shown by the next
// (its ACK was lost: the server sends it again).
func TestReceiveHistoryAcrossRuns(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	for run, tc := range []struct {
		events []string
		acks   []string
		want   []string
	}{
		{[]string{"MSG 7 1000 alice " + fakeserver.WireTime + " first"}, []string{"ACK 7"}, []string{"first"}},
		{[]string{"MSG 7 1000 alice " + fakeserver.WireTime + " first", "MSG 8 1000 alice " + fakeserver.WireTime + " second"}, []string{"ACK 7", "ACK 8"}, []string{"second"}},
	} {
		s, stdout, stderr, status := startReceiver(t, Config{Count: 1})
		sc := s.Accept(t)
		loginAs(t, sc)
		sc.Send(t, tc.events...)
		for _, want := range tc.acks {
			if got := sc.Next(t); got != want {
				t.Errorf("run %d: read %q, want %q", run, got, want)
			}
		}
		sc.Reply(t, sc.Expect(t, "QUIT").Tag, "221 bye")
		sc.Close()
		if got := fakeserver.Await(t, status); got != exitOK {
			t.Errorf("run %d: exit status %d; stderr %q", run, got, stderr.String())
		}
		out := stdout.String()
		for _, text := range []string{"first", "second"} {
			if strings.Contains(out, text) != slices.Contains(tc.want, text) {
				t.Errorf("run %d: stdout %q: %q shown %v, want %v", run, out, text, strings.Contains(out, text), slices.Contains(tc.want, text))
			}
		}
	}
	logs, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_DATA_HOME"), "qchat", "test", "1001", "*.log"))
	if len(logs) != 1 || filepath.Base(logs[0]) != "1000.log" {
		t.Errorf("history files %q, want the conversation with 1000", logs)
	}
}

func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{User: "bob", Password: "pw", NoDiscovery: true}, "--server"},
		{Config{Server: "qchat.invalid", Password: "pw"}, "--user"},
		{Config{Server: "qchat.invalid", User: "bob"}, "no password"},
		{Config{Server: "qchat.invalid", User: "bob", PasswordFile: filepath.Join(dir, "missing")}, "password file"},
		{Config{Server: "qchat.invalid", User: "bob", PasswordFile: empty}, "first line is empty"},
	} {
		var stdout, stderr fakeserver.Buffer
		if got := Run(context.Background(), tc.cfg, &stdout, &stderr); got != exitUsage {
			t.Errorf("Run(%+v) = %d, want %d", tc.cfg, got, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("Run(%+v): stderr %q, want %q", tc.cfg, stderr.String(), tc.want)
		}
	}
}

// With several servers: a dead one is skipped at the start, and when the
// server in use goes away recv moves to the next; what the new one sends
// again (its ACK was lost) is not shown or counted twice. Each step is
// said on stderr, and in the connection records under --json.
func TestReceiveMovesToAnotherServer(t *testing.T) {
	gone := fakeserver.New(t, "")
	gone.Close()
	a, b := fakeserver.New(t, fakeserver.Greeting), fakeserver.New(t, fakeserver.Greeting)
	list := gone.Addr() + "," + a.Addr() + "," + b.Addr()
	stdout, stderr := &fakeserver.Buffer{}, &fakeserver.Buffer{}
	r := &receiver{cfg: Config{Server: list, ServerOrder: client.OrderListed, User: "bob", DialTimeout: fakeserver.Guard, NoTLS: true,
		Count: 2, NoHistory: true, JSON: true}, pw: "pw", out: client.NewPrinter(stdout, true), stderr: stderr}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	status := fakeserver.Async(func() int { return r.run(ctx) })

	sc := a.Accept(t)
	loginAs(t, sc)
	sc.Send(t, "MSG 7 1000 alice "+fakeserver.WireTime+" first")
	if got := sc.Next(t); got != "ACK 7" {
		t.Errorf("a read %q", got)
	}
	sc.Close()
	sc = b.Accept(t)
	loginAs(t, sc)
	sc.Send(t, "MSG 7 1000 alice "+fakeserver.WireTime+" first", "MSG 8 1000 alice "+fakeserver.WireTime+" second")
	for _, want := range []string{"ACK 7", "ACK 8"} {
		if got := sc.Next(t); got != want {
			t.Errorf("b read %q, want %q", got, want)
		}
	}
	sc.Reply(t, sc.Expect(t, "QUIT").Tag, "221 bye")
	sc.Close()
	if got := fakeserver.Await(t, status); got != exitOK {
		t.Errorf("exit status %d; stderr %q", got, stderr.String())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var rec struct{ Type, Text, State, Server, Failed, Next, Previous string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		switch {
		case rec.Type == "msg":
			got = append(got, rec.Text)
		case rec.Type == "connection" && rec.State == "reconnecting" && rec.Failed != "":
			got = append(got, "skipped "+rec.Failed+" for "+rec.Server)
		case rec.Type == "connection" && rec.State == "lost":
			got = append(got, "lost "+rec.Server+", next "+rec.Next)
		case rec.Type == "connection" && rec.State == "back":
			got = append(got, "back on "+rec.Server+" from "+rec.Previous)
		}
	}
	want := []string{"skipped " + gone.Addr() + " for " + a.Addr(), "first", "lost " + a.Addr() + ", next " + b.Addr(),
		"back on " + b.Addr() + " from " + a.Addr(), "second"}
	if !slices.Equal(got, want) {
		t.Errorf("stdout holds\n%q\nwant\n%q", got, want)
	}
	errs := stderr.String()
	for _, want := range []string{
		"qchat recv: cannot connect to " + gone.Addr() + ": nothing is listening there (connection refused)",
		"; trying " + a.Addr() + "…\n",
		"qchat recv: connection to " + a.Addr() + " lost (the server closed the connection); trying " + b.Addr() + "…\n",
		"qchat recv: reconnected: back on " + b.Addr() + " after ",
		" (moved from " + a.Addr() + ")\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q lacks %q", errs, want)
		}
	}
}

package client

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
	"qchat/xfer"
)

func TestParseOffer(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		wire string
		want OfferEvent
	}{
		{"OFFER abc 1000 alice " + fakeserver.WireTime + " file 3 1024 my photos/",
			OfferEvent{Ticket: "abc", From: 1000, FromNick: "alice", Time: at, Purpose: "file", Count: 3, Bytes: 1024, Name: "my photos/"}},
		{"OFFER t1 1001 bob " + fakeserver.WireTime + " chat",
			OfferEvent{Ticket: "t1", From: 1001, FromNick: "bob", Time: at, Purpose: "chat"}},
		{"OFFER t2 1001 bob " + fakeserver.WireTime + " file 1 0 empty.txt",
			OfferEvent{Ticket: "t2", From: 1001, FromNick: "bob", Time: at, Purpose: "file", Count: 1, Bytes: 0, Name: "empty.txt"}},
		// the name is the trailing argument: its inner spaces stay
		{"OFFER t3 1001 bob " + fakeserver.WireTime + " file 12 31457280 two  spaces and more",
			OfferEvent{Ticket: "t3", From: 1001, FromNick: "bob", Time: at, Purpose: "file", Count: 12, Bytes: 31457280, Name: "two  spaces and more"}},
		{"OFFER t4 1002 小明 " + fakeserver.WireTime + " file 2 9223372036854775807 2 files",
			OfferEvent{Ticket: "t4", From: 1002, FromNick: "小明", Time: at, Purpose: "file", Count: 2, Bytes: math.MaxInt64, Name: "2 files"}},
		// hostile text is kept as it came: escaping is the printer's job
		{"OFFER t5 1001 bob " + fakeserver.WireTime + " file 1 5 \x1b[31mred\u202egpj.exe",
			OfferEvent{Ticket: "t5", From: 1001, FromNick: "bob", Time: at, Purpose: "file", Count: 1, Bytes: 5, Name: "\x1b[31mred\u202egpj.exe"}},
		// any RFC 3339 time is read
		{"OFFER t6 1001 bob 2026-11-22T11:00:00+01:00 chat",
			OfferEvent{Ticket: "t6", From: 1001, FromNick: "bob", Time: at, Purpose: "chat"}},
	} {
		got, err := ParseOffer(line(t, tc.wire))
		if err != nil {
			t.Errorf("ParseOffer(%q): %v", tc.wire, err)
			continue
		}
		if !got.Time.Equal(tc.want.Time) {
			t.Errorf("ParseOffer(%q): time %v, want %v", tc.wire, got.Time, tc.want.Time)
		}
		got.Time = tc.want.Time
		if got != tc.want {
			t.Errorf("ParseOffer(%q) =\n %+v, want\n %+v", tc.wire, got, tc.want)
		}
	}
}

func TestParseOfferMalformed(t *testing.T) {
	// Lines a server (or a broken one) could send that parse as lines but
	// are no offer.
	for _, wire := range []string{
		"OFFER abc bob alice " + fakeserver.WireTime + " chat",       // from is not an id
		"OFFER abc 0 alice " + fakeserver.WireTime + " chat",         // ids are positive
		"OFFER abc -1000 alice " + fakeserver.WireTime + " chat",     // no sign
		"OFFER abc 1000 alice yesterday chat",                        // not a time
		"OFFER abc 1000 alice 2026-11-22 chat",                       // a date is not a time
		"OFFER abc 1000 alice " + fakeserver.WireTime + " voice",     // unknown purpose
		"OFFER abc 1000 alice " + fakeserver.WireTime + " CHAT",      // purposes are lower case
		"OFFER abc 1000 alice " + fakeserver.WireTime + " chat more", // a chat has no summary
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file",      // a file offer needs its summary
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file 3 1024",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file 0 1024 none",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file -1 1024 negative",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file x 1024 x",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file 99999999999999999999 1 huge",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file 1 -1 negative size",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file 1 1.5 fractional",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " file 1 99999999999999999999 too big",
		"OFFER abc 1000 alice " + fakeserver.WireTime + " chat 1 2 3", // chat with a summary
		"CANCEL abc timeout",
		"PRESENCE 1000 alice online",
		"260 abc 1000 192.0.2.1:4000 " + fakeserver.WireTime, // the reply, not the event
	} {
		if o, err := ParseOffer(line(t, wire)); err == nil {
			t.Errorf("ParseOffer(%q) = %+v, want an error", wire, o)
		}
	}
	// Lines the line parser already refuses never reach ParseOffer; built
	// by hand they must still be refused.
	for _, l := range []protocol.Line{
		{},
		{Kind: "OFFER"},
		{Kind: "OFFER", Args: []string{"abc", "1000", "alice", fakeserver.WireTime}},
		{Kind: "OFFER", Args: []string{"abc", "1000", "alice", fakeserver.WireTime, "file", "1", "2", "x", "extra"}},
		{Kind: "offer", Args: []string{"abc", "1000", "alice", fakeserver.WireTime, "chat"}},
	} {
		if o, err := ParseOffer(l); err == nil {
			t.Errorf("ParseOffer(%+v) = %+v, want an error", l, o)
		}
	}
	if _, err := protocol.ParseLine([]byte("OFFER abc 1000 alice")); err == nil {
		t.Error("ParseLine took an OFFER with 3 arguments")
	}
}

func TestParseCancel(t *testing.T) {
	for _, tc := range []struct{ wire, ticket, why string }{
		{"CANCEL abc timeout", "abc", "timeout"},
		{"CANCEL 3kq7xw2m0a9d5f1h8j4n6p2r0t gone", "3kq7xw2m0a9d5f1h8j4n6p2r0t", "gone"},
		// a reason from a newer server is passed on (the printer escapes it)
		{"CANCEL abc withdrawn", "abc", "withdrawn"},
	} {
		ticket, why, err := ParseCancel(line(t, tc.wire))
		if err != nil || ticket != tc.ticket || why != tc.why {
			t.Errorf("ParseCancel(%q) = %q, %q, %v; want %q, %q", tc.wire, ticket, why, err, tc.ticket, tc.why)
		}
	}
	for _, l := range []protocol.Line{
		{},
		{Kind: "CANCEL"},
		{Kind: "CANCEL", Args: []string{"abc"}},
		{Kind: "CANCEL", Args: []string{"abc", "timeout", "extra"}},
		{Kind: "OFFER", Args: []string{"abc", "timeout"}},
		{Code: 200, Text: "abc timeout"},
	} {
		if ticket, why, err := ParseCancel(l); err == nil {
			t.Errorf("ParseCancel(%+v) = %q, %q, want an error", l, ticket, why)
		}
	}
	for _, wire := range []string{"CANCEL abc", "CANCEL abc gone now", "CANCEL"} {
		if _, err := protocol.ParseLine([]byte(wire)); err == nil {
			t.Errorf("ParseLine(%q) took a CANCEL with the wrong arguments", wire)
		}
	}
}

func TestParseTicket(t *testing.T) {
	by := time.Date(2026, 11, 22, 10, 2, 0, 0, time.UTC)
	const ticket = "3kq7xw2m0a9d5f1h8j4n6p2r0t"
	const key = "SHA256:gbY32PzSxtpjWeaWMROhFw3nleS3JbhNHgtM/Z7FjOk"
	const secret = "r7kq2m0a9d5f1h8j4n6p2r0tzz"
	for _, tc := range []struct {
		text, purpose string
		peer          int64
		addr          string
		more          string // the announced endpoints, joined
		port          int    // the peer's own peer port (port=), 0 if not said
	}{
		{ticket + " 1001 192.0.2.1:4000 2026-11-22T10:02:00.000Z " + key + " " + secret, "chat", 1001, "192.0.2.1:4000", "", 0},
		{ticket + " 1002 [2001:db8::1]:50000 2026-11-22T10:02:00.000Z " + key + " " + secret, "file", 1002, "[2001:db8::1]:50000", "", 0},
		{ticket + "  1001   10.0.0.5:1  2026-11-22T10:02:00.000Z  " + key + " " + secret + " ", "file", 1001, "10.0.0.5:1", "", 0},
		{ticket + " 1001 192.0.2.1:4000 2026-11-22T10:02:00.000Z " + key + " " + secret + " [2001:db8:1::2]:4000 [2001:db8:2::9]:4000",
			"chat", 1001, "192.0.2.1:4000", "[2001:db8:1::2]:4000 [2001:db8:2::9]:4000", 0},
		{ticket + " 1001 192.0.2.1:61234 2026-11-22T10:02:00.000Z " + key + " " + secret + " port=4000",
			"chat", 1001, "192.0.2.1:61234", "", 4000},
		{ticket + " 1001 192.0.2.1:4000 2026-11-22T10:02:00.000Z " + key + " " + secret + " port=4000 [2001:db8:1::2]:4000",
			"file", 1001, "192.0.2.1:4000", "[2001:db8:1::2]:4000", 4000},
	} {
		got, err := parseTicket(tc.text, tc.purpose)
		if err != nil {
			t.Errorf("parseTicket(%q): %v", tc.text, err)
			continue
		}
		if got.ID != ticket || got.Purpose != tc.purpose || got.Peer != tc.peer || got.PeerAddr != tc.addr || !got.Expires.Equal(by) || got.Offerer ||
			got.PeerKey != key || got.RelaySecret != secret || strings.Join(got.PeerAddrs, " ") != tc.more || got.PeerPort != tc.port {
			t.Errorf("parseTicket(%q) = %+v", tc.text, got)
		}
	}
	long := strings.Repeat("\x1b[31m", 100)
	for _, text := range []string{
		"",
		ticket,
		ticket + " 1001 192.0.2.1:4000",
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " extra",
		ticket + " bob 192.0.2.1:4000 " + fakeserver.WireTime,
		ticket + " 0 192.0.2.1:4000 " + fakeserver.WireTime,
		ticket + " 1001 192.0.2.1:4000 soon",
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime,                           // no key: a server of before
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " - " + secret,          // a peer without a key
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " SHA256:abc " + secret, // not a fingerprint
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " " + key,               // no relay secret
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " " + key + " " + secret + " nonsense",
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " " + key + " " + secret + " port=70000",
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " " + key + " " + secret + " [2001:db8:1::2]:4000 port=4000",
		ticket + " 1001 192.0.2.1:4000 " + fakeserver.WireTime + " " + key + " " + secret + strings.Repeat(" [2001:db8::1]:1", 5),
		"refused the chat from 1001",
		long,
	} {
		got, err := parseTicket(text, "chat")
		if err == nil {
			t.Errorf("parseTicket(%q) = %+v, want an error", text, got)
			continue
		}
		if got.ID != "" {
			t.Errorf("parseTicket(%q) returned ticket %q with its error", text, got.ID)
		}
		// The error quotes the reply, clipped.
		if msg := err.Error(); len(msg) > 200 || strings.ContainsRune(msg, 0x1b) {
			t.Errorf("parseTicket(%q): error %q is not short and escaped", text, msg)
		}
	}
}

func TestDisplayName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"my photos/", "my photos/"},
		{"3 files", "3 files"},
		{"你好 🌏.txt", "你好 🌏.txt"},
		{"\x1b[31mred.txt", `\x1b[31mred.txt`},
		{"evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"a\tb", `a\tb`},
		{"line\nbreak\r", `line\x0abreak\x0d`},
		{"nul\x00", `nul\x00`},
		{"del\x7f", `del\x7f`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"   leading", "leading"},
		{"trailing  ", "trailing  "},
		{"", "file"},
		{"    ", "file"},
	} {
		got := displayName(tc.in)
		if got != tc.want {
			t.Errorf("displayName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		checkFileName(t, tc.in, got)
	}
	// Long names are clipped on a rune boundary to what the FILE line takes.
	for _, in := range []string{
		strings.Repeat("a", 255),
		strings.Repeat("a", 256),
		strings.Repeat("a", 10000),
		strings.Repeat("你", 100),      // 300 bytes
		strings.Repeat("🌏", 70),       // 280 bytes
		strings.Repeat("\x1b", 100),   // 400 bytes once escaped
		strings.Repeat("\u202e", 100), // 600 bytes once escaped
		" " + strings.Repeat("é", 200),
	} {
		got := displayName(in)
		checkFileName(t, in, got)
		if len(in) > 255 && !strings.HasSuffix(got, "…") {
			t.Errorf("displayName(%.20q...) = %.20q...: clipped without a mark", in, got)
		}
	}
}

// checkFileName checks what the server takes as a FILE name (PROTOCOL.md
// section 9): one line of at most 255 bytes, no control characters, and a
// trailing argument the encoder accepts.
func checkFileName(t *testing.T, in, got string) {
	t.Helper()
	if len(got) == 0 || len(got) > 255 {
		t.Errorf("displayName(%.40q) has %d bytes", in, len(got))
	}
	if err := protocol.CheckText(got, 255); err != nil {
		t.Errorf("displayName(%.40q) = %.40q: %v", in, got, err)
	}
	if protocol.Escape(got) != got {
		t.Errorf("displayName(%.40q) = %.40q: holds characters the server refuses", in, got)
	}
	if why := fakeserver.TerminalUnsafe(got); why != "" {
		t.Errorf("displayName(%.40q) = %.40q: %s", in, got, why)
	}
	if _, err := protocol.AppendCommand(nil, "c1", "FILE", "1001", "1", "0", got); err != nil {
		t.Errorf("displayName(%.40q) = %.40q: FILE line refused: %v", in, got, err)
	}
}

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n    int
		word string
		want string
	}{
		{0, "file", "0 files"},
		{1, "file", "1 file"},
		{2, "file", "2 files"},
		{100000, "file", "100000 files"},
		{-1, "file", "-1 files"},
		{1, "message", "1 message"},
	} {
		if got := Plural(tc.n, tc.word); got != tc.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", tc.n, tc.word, got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{999, "999 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{10 * 1024, "10.0 KiB"},
		{1 << 20, "1.0 MiB"},
		{3355443, "3.2 MiB"},
		{1258291, "1.2 MiB"},
		{5 << 30, "5.0 GiB"},
		{1 << 40, "1.0 TiB"},
		{1 << 50, "1.0 PiB"},
		{1 << 60, "1.0 EiB"},
		{math.MaxInt64, "8.0 EiB"},
	} {
		if got := FormatBytes(tc.n); got != tc.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestOfferLabel(t *testing.T) {
	for _, tc := range []struct {
		count int
		bytes int64
		name  string
		want  string
	}{
		{1, 1258291, "report.pdf", "report.pdf (1 file, 1.2 MiB)"},
		{12, 30 << 20, "album/", "album/ (12 files, 30.0 MiB)"},
		{3, 5033165, "3 files", "3 files (4.8 MiB)"},
		{1, 0, "empty", "empty (1 file, 0 B)"},
		{2, 10, "two  spaces", "two  spaces (2 files, 10 B)"},
		// a name that only looks like a count of another size keeps both
		{3, 10, "2 files", "2 files (3 files, 10 B)"},
		{1, 10, `\x1b[31m`, `\x1b[31m (1 file, 10 B)`},
	} {
		if got := OfferLabel(tc.count, tc.bytes, tc.name); got != tc.want {
			t.Errorf("OfferLabel(%d, %d, %q) = %q, want %q", tc.count, tc.bytes, tc.name, got, tc.want)
		}
	}
}

func TestDirectIDSequential(t *testing.T) {
	prev := DirectID()
	if prev >= 0 {
		t.Fatalf("DirectID() = %d, want a negative id", prev)
	}
	for range 10000 {
		id := DirectID()
		if id >= prev {
			t.Fatalf("DirectID() = %d after %d: not decreasing", id, prev)
		}
		prev = id
	}
}

func TestDirectIDConcurrent(t *testing.T) {
	const workers, each = 16, 2000
	before := DirectID()
	results := make([][]int64, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ids := make([]int64, each)
			for i := range ids {
				ids[i] = DirectID()
			}
			results[w] = ids
		}()
	}
	close(start)
	wg.Wait()
	after := DirectID()
	seen := make(map[int64]bool, workers*each)
	for w, ids := range results {
		for i, id := range ids {
			if id >= 0 {
				t.Fatalf("worker %d: id %d is not negative", w, id)
			}
			if id >= before || id <= after {
				t.Fatalf("worker %d: id %d not between the ids before (%d) and after (%d)", w, id, before, after)
			}
			if i > 0 && id >= ids[i-1] {
				t.Fatalf("worker %d: id %d after %d: not decreasing", w, id, ids[i-1])
			}
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
	}
}

// TestLoginSendsLinkKey: a client with a peer listener tells the server
// its link key right after login, so that its tickets carry it.
func TestLoginSendsLinkKey(t *testing.T) {
	peer, err := xfer.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	s := fakeserver.New(t, fakeserver.Greeting)
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	c, err := Dial(ctx, s.Addr(), Options{Peer: peer, NoTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := s.Accept(t)
	done := fakeserver.Async(func() error { _, err := c.Login(ctx, "alice", "pw"); return err })
	sc.Reply(t, sc.Expect(t, "USER").Tag, "331 password required")
	sc.Reply(t, sc.Expect(t, "PASS").Tag, "230 1000 alice")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
	cmd := sc.Expect(t, "LINKKEY")
	if len(cmd.Args) != 1 || cmd.Args[0] != peer.Fingerprint() || !protocol.ValidLinkKey(cmd.Args[0]) {
		t.Errorf("LINKKEY %q, want the peer's key %s", cmd.Args, peer.Fingerprint())
	}
}

// TestLoginLearnsNAT: after login the client announces its IPv6
// endpoints and learns from the reply what the server sees of it, which
// tells its NAT.
func TestLoginLearnsNAT(t *testing.T) {
	peer, err := xfer.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	for _, tc := range []struct{ observed, want string }{
		{"203.0.113.7:" + strconv.Itoa(peer.Port()), xfer.NATPortKept},
		{"203.0.113.7:1", xfer.NATPortChanged},
		{"127.0.0.1:1", xfer.NATNone}, // one of our own addresses
	} {
		s := fakeserver.New(t, fakeserver.Greeting)
		ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
		c, err := Dial(ctx, s.Addr(), Options{Peer: peer, NoTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.NAT(); got != xfer.NATUnknown {
			t.Errorf("before login: NAT %q", got)
		}
		sc := s.Accept(t)
		done := fakeserver.Async(func() error { _, err := c.Login(ctx, "alice", "pw"); return err })
		sc.Reply(t, sc.Expect(t, "USER").Tag, "331 password required")
		sc.Reply(t, sc.Expect(t, "PASS").Tag, "230 1000 alice")
		if err := fakeserver.Await(t, done); err != nil {
			t.Fatal(err)
		}
		sc.Reply(t, sc.Expect(t, "LINKKEY").Tag, "200 link key")
		cmd := sc.Expect(t, "ENDPOINTS")
		if want := append([]string{"port=" + strconv.Itoa(peer.Port())}, peer.Endpoints6()...); strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
			t.Errorf("ENDPOINTS %q, want %q", cmd.Args, want)
		}
		sc.Reply(t, cmd.Tag, "200 "+tc.observed)
		// Replies are taken in order: once PING's is in, so is ENDPOINTS'.
		done = fakeserver.Async(func() error { _, err := c.Do(ctx, "PING"); return err })
		sc.Reply(t, sc.Expect(t, "PING").Tag, "200 pong")
		if err := fakeserver.Await(t, done); err != nil {
			t.Fatal(err)
		}
		if got := c.NAT(); got != tc.want {
			t.Errorf("observed %s: NAT %q, want %q", tc.observed, got, tc.want)
		}
		c.Close()
		cancel()
	}
}

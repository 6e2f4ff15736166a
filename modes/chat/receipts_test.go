package chat

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"qchat/modes/chat/internal/liner"
	"qchat/modes/client"
	"qchat/modes/internal/fakeserver"
)

// fakeClock is the clock of receiptState in tests: now moves by hand, and
// the redraws asked for are kept to be checked.
type fakeClock struct {
	now    time.Time
	redraw []time.Duration
}

func (c *fakeClock) install(a *app) {
	a.rt.now = func() time.Time { return c.now }
	a.rt.after = func(d time.Duration, f func()) { c.redraw = append(c.redraw, d) }
}

// onTerminal makes a look like the REPL's app to receipts.go (a terminal
// that prints nothing: its prompt is what the test reads).
func onTerminal(a *app) { a.term = &terminal{line: new(liner.State)} }

// TestPromptShowsTyping: "bob is typing…" is in the prompt from bob's
// TYPING on until his off, his message, or typingShown without a new on
// (a redraw is asked for then); several are named together.
func TestPromptShowsTyping(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	clock := &fakeClock{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	clock.install(a)
	onTerminal(a)
	a.me.ID, a.me.Nick, a.cur = 1000, "alice", "1001"
	bob := client.User{ID: 1001, Nick: "bob"}
	carol := client.User{ID: 1002, Nick: "carol"}

	a.onTyping(client.Typing{From: bob, On: true})
	if got, want := a.prompt(), "alice → bob [bob is typing…]> "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	if len(clock.redraw) != 1 || clock.redraw[0] != typingShown {
		t.Errorf("redraws asked for %v, want one after %v", clock.redraw, typingShown)
	}
	clock.now = clock.now.Add(typingShown - time.Millisecond)
	a.onTyping(client.Typing{From: carol, On: true})
	if got, want := a.prompt(), "alice → bob [bob, carol are typing…]> "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	// bob said nothing more: gone after typingShown; carol still typing.
	clock.now = clock.now.Add(time.Millisecond)
	if got, want := a.prompt(), "alice → bob [carol is typing…]> "; got != want {
		t.Errorf("prompt after bob's timeout %q, want %q", got, want)
	}
	a.onTyping(client.Typing{From: bob, On: true})
	a.onTyping(client.Typing{From: carol, On: false})
	if got, want := a.prompt(), "alice → bob [bob is typing…]> "; got != want {
		t.Errorf("prompt after carol's off %q, want %q", got, want)
	}
	// bob's message ends his typing.
	a.shownMessage(client.Message{Kind: "MSG", ID: 7, From: 1001, FromNick: "bob"}, false)
	if got, want := a.prompt(), "alice → bob> "; got != want {
		t.Errorf("prompt after bob's message %q, want %q", got, want)
	}
}

// TestPromptShowsMarks: the prompt carries the marks of my last message
// to the target, as the 250 and later RECEIPTs tell them; marks only go
// up, and a newer message starts again at ✓.
func TestPromptShowsMarks(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	onTerminal(a)
	a.me.ID, a.me.Nick, a.cur = 1000, "alice", "1001"
	a.remember(1001, "bob")
	sent := func(id int64, mark string) { a.sentMark(client.Sent{ID: id, Status: "stored", To: 1001, Mark: mark}) }
	receipt := func(mark string, upTo int64) {
		a.onReceipt(client.Receipt{Peer: client.User{ID: 1001, Nick: "bob"}, Mark: mark, UpTo: upTo})
	}
	for _, step := range []struct {
		do   func()
		want string
	}{
		{func() {}, "alice → bob> "},
		{func() { sent(7, "") }, "alice → bob ✓> "},
		{func() { receipt(client.MarkShown, 7) }, "alice → bob ✓✓> "},
		{func() { receipt(client.MarkRead, 7) }, "alice → bob ✓✓ read> "},
		{func() { receipt(client.MarkShown, 5) }, "alice → bob ✓✓ read> "}, // an older mark changes nothing
		{func() { sent(9, client.MarkShown) }, "alice → bob ✓✓> "},
		{func() { sent(12, "") }, "alice → bob ✓> "},
		{func() { receipt(client.MarkRead, 12) }, "alice → bob ✓✓ read> "},
		{func() { a.cur = "#team" }, "alice → #team> "}, // a group has none
	} {
		step.do()
		if got := a.prompt(); got != step.want {
			t.Errorf("prompt %q, want %q", got, step.want)
		}
	}
	if got := a.lastMarkText("1001"); got != " — your last message: ✓✓ read" {
		t.Errorf("the switch line says %q", got)
	}
}

// TestReadWhenReading: a message into the conversation on screen is read
// when the window has focus, or without focus reports when a key was
// pressed lately; not when the window lost focus, until it has it again
// or the user types in it.
// A burst is read by one READ, after its last message.
func TestReadWhenReading(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	sc := connect(t, a)
	loginApp(t, a, sc)
	clock := &fakeClock{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	clock.install(a)
	onTerminal(a)
	a.cur = "1001"
	msg := func(id int64, more bool) {
		a.shownMessage(client.Message{Kind: "MSG", ID: id, From: 1001, FromNick: "bob"}, more)
	}

	msg(1, false) // no key yet, no focus report: not read
	a.onEdit("h") // a key: reading; typing to bob
	if got := sc.Next(t); got != "READ 1001 1" {
		t.Fatalf("after a key the client wrote %q", got)
	}
	if got := sc.Next(t); got != "TYPING 1001 on" {
		t.Fatalf("typing: the client wrote %q", got)
	}
	msg(2, true) // a burst: the READ waits for its end
	msg(3, false)
	if got := sc.Next(t); got != "READ 1001 3" {
		t.Fatalf("after a burst the client wrote %q", got)
	}
	clock.now = clock.now.Add(activeFor)
	msg(4, false) // no key for activeFor: not read
	a.onFocus(false)
	a.onFocus(true) // focus back: read
	if got := sc.Next(t); got != "READ 1001 4" {
		t.Fatalf("at focus the client wrote %q", got)
	}
	msg(5, false) // with focus: read at once, however long since a key
	if got := sc.Next(t); got != "READ 1001 5" {
		t.Fatalf("with focus the client wrote %q", got)
	}
	a.onFocus(false)
	msg(6, false) // out of focus: not read...
	a.onEdit("")  // ...until a key (it proves focus): read, and the line cleared
	for _, want := range []string{"READ 1001 6", "TYPING 1001 off"} {
		if got := sc.Next(t); got != want {
			t.Fatalf("the client wrote %q, want %q", got, want)
		}
	}
	a.setSettings("off", "")
	a.onFocus(true) // receipts off: no READ
	a.setSettings("", "off")
	a.onEdit("hello") // typing off: no TYPING
	done := execAsync(a, "/list")
	sc.Answer(t, "LIST", "210 0 online") // nothing was written before it
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestPipedReceiptsAndTyping: piped, RECEIPT and TYPING events are
// printed (plain and JSON), /read and /typing say READ and TYPING, and
// /set changes the setting on the server.
func TestPipedReceiptsAndTyping(t *testing.T) {
	for _, jsonOut := range []bool{false, true} {
		a, out, _ := newTestApp(t, jsonOut)
		sc := connect(t, a)
		loginApp(t, a, sc)
		a.events.Add(1)
		go a.eventLoop()
		sc.Send(t, "MSG 7 1001 bob "+fakeserver.WireTime+" hi", "RECEIPT 1001 bob read 5", "TYPING 1001 bob on", "RECEIPT 1001 bob sideways 5")
		if got := sc.Next(t); got != "ACK 7" { // piped: nothing is read by itself
			t.Fatalf("the client wrote %q", got)
		}
		if err := fakeserver.Await(t, execAsync(a, "/wait typing")); err != nil {
			t.Fatal(err)
		}
		done := execAsync(a, "/read bob")
		sc.Answer(t, "INFO", "211-id 1000", "211-nick alice", "211-receipts on", "211-typing on", "211 end") // the settings, once
		if got := sc.Next(t); got != "READ 1001 7" {
			t.Fatalf("/read: the client wrote %q", got)
		}
		if err := fakeserver.Await(t, done); err != nil {
			t.Fatal(err)
		}
		if err := fakeserver.Await(t, execAsync(a, "/typing bob on")); err != nil {
			t.Fatal(err)
		}
		if got := sc.Next(t); got != "TYPING 1001 on" {
			t.Fatalf("/typing: the client wrote %q", got)
		}
		done = execAsync(a, "/set receipts off")
		sc.Answer(t, "SET", "200 receipts off")
		if err := fakeserver.Await(t, done); err != nil {
			t.Fatal(err)
		}
		if err := a.exec(t.Context(), "/read bob"); err == nil || !strings.Contains(err.Error(), "receipts are off") {
			t.Errorf("/read with receipts off: %v", err)
		}
		if err := a.exec(t.Context(), "/set receipts maybe"); err == nil {
			t.Error("/set receipts maybe was taken")
		}
		got := out.String()
		if !jsonOut {
			for _, want := range []string{"✓✓ bob (1001) read your messages up to 5\n", "* bob (1001) is typing…\n", "read up to 7 from bob (1001)\n", "typing on to bob (1001)\n", "receipts off\n"} {
				if !strings.Contains(got, want) {
					t.Errorf("piped output %q lacks %q", got, want)
				}
			}
			if strings.Contains(got, "sideways") {
				t.Errorf("a malformed RECEIPT was printed: %q", got)
			}
			continue
		}
		var receipt client.ReceiptRecord
		var typing client.TypingRecord
		for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
			var head client.Head
			json.Unmarshal([]byte(l), &head)
			switch head.Type {
			case "receipt":
				json.Unmarshal([]byte(l), &receipt)
			case "typing":
				json.Unmarshal([]byte(l), &typing)
			}
		}
		if receipt.Peer != 1001 || receipt.PeerNick != "bob" || receipt.Mark != "read" || receipt.UpTo != 5 || receipt.Time == "" {
			t.Errorf("receipt object %+v", receipt)
		}
		if typing.From != 1001 || typing.FromNick != "bob" || typing.State != "on" || typing.Time == "" {
			t.Errorf("typing object %+v", typing)
		}
	}
}

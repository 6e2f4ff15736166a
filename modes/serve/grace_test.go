package serve

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"qchat/modes/serve/store"
	"qchat/protocol"
)

// TestAckGraceFitsTheRecipient: an entry pushed to an online recipient is
// stored only when the recipient is late by its own measure: its grace is
// over (at least --ack-grace, more for a recipient measured slower) and it
// has acknowledged nothing for twice as long; or the entry has waited
// maxGrace. A recipient that keeps acknowledging, only slowly, is waited
// for.
func TestAckGraceFitsTheRecipient(t *testing.T) {
	po := &postOffice{grace: 20 * time.Millisecond}
	mb := &mailbox{user: 2}
	ms := int64(time.Millisecond)
	pushed := time.Now().UnixNano()
	for i := range 3 {
		e := &entry{mb: mb, pushed: true, at: pushed}
		e.item = &store.Item{ID: int64(i + 1), Time: time.Unix(0, e.at)}
		mb.queue = append(mb.queue, slot{e.item.ID, e})
		mb.live++
	}
	mb.next = 3
	due := func(now int64) int {
		batch, _ := po.dueLocked(mb, now, false, nil)
		return len(batch)
	}
	// Never acknowledged anything (silent since ever): stored after the
	// grace, not before.
	if n := due(pushed + 19*ms); n != 0 {
		t.Errorf("%d entries due before the grace is over", n)
	}
	if n := due(pushed + 20*ms); n != 3 {
		t.Errorf("%d entries due after the grace of a silent recipient, want 3", n)
	}
	// It acknowledged something 30 ms ago: not silent for twice its
	// grace, so waited for...
	mb.lastAck = pushed + 10*ms
	if n := due(pushed + 40*ms); n != 0 {
		t.Errorf("%d entries due for a recipient still acknowledging", n)
	}
	// ...until it is (50 ms after its last ACK),
	if n := due(pushed + 50*ms); n != 3 {
		t.Errorf("%d entries due once the recipient went silent, want 3", n)
	}
	// and at most maxGrace, however busy it is acknowledging others.
	mb.lastAck = pushed + int64(maxGrace)
	if n := due(pushed + int64(maxGrace) - ms); n != 0 {
		t.Errorf("%d entries due before maxGrace", n)
	}
	if n := due(pushed + int64(maxGrace)); n != 3 {
		t.Errorf("%d entries due at maxGrace, want 3", n)
	}
	// A recipient measured at 100 ms per acknowledgement gets a longer
	// grace than the server's floor, never more than maxGrace.
	mb.srtt, mb.rttvar = 0, 0
	for range 20 {
		mb.sampleLocked(100 * ms)
	}
	if g := po.graceLocked(mb); g < 100*ms || g > int64(maxGrace) {
		t.Errorf("grace after 100 ms acknowledgements = %v, want 100ms..%v", time.Duration(g), maxGrace)
	}
	for range 20 {
		mb.sampleLocked(10 * time.Second.Nanoseconds())
	}
	if g := po.graceLocked(mb); g != int64(maxGrace) {
		t.Errorf("grace of a very slow recipient = %v, want the bound %v", time.Duration(g), maxGrace)
	}
}

// TestAckUpTo: ACK ..<msgid> acknowledges every message sent up to that
// id, and only those: the senders hear "delivered" for them, the rest
// comes again after a new login.
func TestAckUpTo(t *testing.T) {
	srv := testServer(t, t.TempDir())
	defer srv.Shutdown()
	a := dial(t, srv, "a")
	register(a, "alice", "pw")
	bob := register(a, "bob", "pw")
	a.login("alice", "pw")
	b := dial(t, srv, "b")
	b.login("bob", "pw")
	b.quiet() // bob's mailbox is his: online
	for i := 1; i <= 3; i++ {
		a.send(fmt.Sprintf("@m%d MSG bob text %d", i, i))
	}
	var ids []int64
	for range 3 {
		ids = append(ids, b.nextMsg().id)
	}
	b.send(fmt.Sprintf("ACK ..%d", ids[1]))
	for i := 1; i <= 2; i++ {
		l := a.waitFor("a 250", func(l protocol.Line) bool { return l.Code == protocol.CodeSent })
		if l.Tag != "m"+strconv.Itoa(i) {
			t.Fatalf("answer %q first, want m%d", l.Tag, i)
		}
		sent(t, l, "delivered", bob)
	}
	a.quiet() // the third waits: it was not acknowledged
	b.want("QUIT", protocol.CodeBye)
	b = dial(t, srv, "b2")
	b.login("bob", "pw")
	if m := b.nextMsg(); m.id != ids[2] {
		t.Fatalf("after a new login bob got %d, want the unacknowledged %d", m.id, ids[2])
	}
	b.send("ACK ..x")
	if l := b.next(); l.Code != protocol.CodeSyntax || !strings.Contains(l.Text, "bad message id") {
		t.Fatalf("ACK ..x: got %d %s, want 501", l.Code, l.Text)
	}
	b.send("ACK 5,")
	if l := b.next(); l.Code != protocol.CodeSyntax {
		t.Fatalf("ACK 5,: got %d %s, want 501", l.Code, l.Text)
	}
}

// TestHotVerb: only MSG and ACK lines take their strings from the arena.
func TestHotVerb(t *testing.T) {
	for line, want := range map[string]bool{
		"MSG bob hi": true, "msg bob hi": true, "@t1 MSG bob hi": true, "  @t1   ack ..5": true, "ACK 5": true,
		"REG alice pw": false, "MSGX a b": false, "MSG": false, "@t1": false, "SET status x": false, "": false,
	} {
		if got := hotVerb([]byte(line)); got != want {
			t.Errorf("hotVerb(%q) = %v, want %v", line, got, want)
		}
	}
}

package client

import (
	"context"
	"errors"
	"testing"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

// TestReceiptLines: READ and TYPING go out as the protocol says, and only
// to a server whose greeting says "receipts": to an older one nothing is
// sent (it would answer each with 500).
func TestReceiptLines(t *testing.T) {
	c, sc := dialFake(t)
	if err := c.Read("bob", 57); err != nil {
		t.Fatal(err)
	}
	c.Typing("1001", true)
	c.Typing("1001", false)
	for _, want := range []string{"READ bob 57", "TYPING 1001 on", "TYPING 1001 off"} {
		if got := sc.Next(t); got != want {
			t.Errorf("wrote %q, want %q", got, want)
		}
	}

	s := fakeserver.New(t, "220 old qchat/1 ready cid")
	ctx, cancel := context.WithTimeout(context.Background(), fakeserver.Guard)
	defer cancel()
	old, err := Dial(ctx, s.Addr(), Options{NoTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	osc := s.Accept(t)
	if err := old.Read("bob", 57); !errors.Is(err, ErrNoReceipts) {
		t.Errorf("Read to an older server: %v", err)
	}
	if err := old.Typing("bob", true); !errors.Is(err, ErrNoReceipts) {
		t.Errorf("Typing to an older server: %v", err)
	}
	done := fakeserver.Async(func() error { _, err := old.Do(ctx, "PING", "x"); return err })
	cmd := osc.Expect(t, "PING") // nothing was written before it
	osc.Reply(t, cmd.Tag, "200 pong x")
	if err := fakeserver.Await(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestParseReceiptEvents: RECEIPT and TYPING events, and the mark of a
// 250; malformed ones are refused.
func TestParseReceiptEvents(t *testing.T) {
	line := func(s string) protocol.Line {
		l, err := protocol.ParseLine([]byte(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return l
	}
	r, err := ParseReceipt(line("RECEIPT 1001 bob read 57"))
	if err != nil || r != (Receipt{Peer: User{1001, "bob"}, Mark: MarkRead, UpTo: 57}) {
		t.Errorf("RECEIPT: %+v, %v", r, err)
	}
	for _, bad := range []string{"RECEIPT 1001 bob seen 57", "RECEIPT bob 1001 read 57", "RECEIPT 1001 bob read x", "TYPING 1001 bob on"} {
		if _, err := ParseReceipt(line(bad)); err == nil {
			t.Errorf("%q taken as a receipt", bad)
		}
	}
	ty, err := ParseTyping(line("TYPING 1001 bob on"))
	if err != nil || ty != (Typing{From: User{1001, "bob"}, On: true}) {
		t.Errorf("TYPING: %+v, %v", ty, err)
	}
	if ty, err := ParseTyping(line("TYPING 1001 bob off")); err != nil || ty.On {
		t.Errorf("TYPING off: %+v, %v", ty, err)
	}
	for _, bad := range []string{"TYPING 1001 bob maybe", "TYPING x bob on"} {
		if _, err := ParseTyping(line(bad)); err == nil {
			t.Errorf("%q taken as typing", bad)
		}
	}
	for text, mark := range map[string]string{
		"7 delivered 1001 " + fakeserver.WireTime:            "",
		"7 delivered 1001 " + fakeserver.WireTime + " shown": MarkShown,
		"7 delivered 1001 " + fakeserver.WireTime + " read":  MarkRead,
		"7 delivered 1001 " + fakeserver.WireTime + " other": "", // a word of a newer server
	} {
		if s, err := parseSent(text); err != nil || s.Mark != mark || s.ID != 7 {
			t.Errorf("parseSent(%q) = %+v, %v; want mark %q", text, s, err, mark)
		}
	}
}

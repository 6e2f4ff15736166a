package client

import (
	"testing"
	"time"

	"qchat/modes/internal/fakeserver"
	"qchat/protocol"
)

func TestParseMessage(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		wire string
		want Message
		chat bool
		conv string
	}{
		{"MSG 7 1001 bob " + fakeserver.WireTime + " hi alice!",
			Message{Kind: "MSG", ID: 7, From: 1001, FromNick: "bob", Time: at, Text: "hi alice!"}, true, "1001"},
		{"MSG 7 1001 bob " + fakeserver.WireTime + " spaces  inside  stay ",
			Message{Kind: "MSG", ID: 7, From: 1001, FromNick: "bob", Time: at, Text: "spaces  inside  stay "}, true, "1001"},
		{"MSG 7 1001 bob " + fakeserver.WireTime + " " + ansi + bidi,
			Message{Kind: "MSG", ID: 7, From: 1001, FromNick: "bob", Time: at, Text: ansi + bidi}, true, "1001"},
		{"MSG 9223372036854775807 1001 小明 " + fakeserver.WireTime + " 你好 🌏",
			Message{Kind: "MSG", ID: 9223372036854775807, From: 1001, FromNick: "小明", Time: at, Text: "你好 🌏"}, true, "1001"},
		{"GMSG 8 1001 bob " + fakeserver.WireTime + " #dev hello all",
			Message{Kind: "GMSG", ID: 8, From: 1001, FromNick: "bob", Time: at, Group: "#dev", Text: "hello all"}, true, "#dev"},
		{"REQUEST 9 1001 bob " + fakeserver.WireTime + " friend",
			Message{Kind: "REQUEST", ID: 9, From: 1001, FromNick: "bob", Time: at, Text: "friend"}, false, "1001"},
		{"REQUEST 10 1001 bob " + fakeserver.WireTime + " invite #dev",
			Message{Kind: "REQUEST", ID: 10, From: 1001, FromNick: "bob", Time: at, Group: "#dev", Text: "invite"}, false, "1001"},
		{"NOTICE 11 1001 bob " + fakeserver.WireTime + " friend-accepted",
			Message{Kind: "NOTICE", ID: 11, From: 1001, FromNick: "bob", Time: at, Text: "friend-accepted"}, false, "1001"},
		{"NOTICE 12 1001 bob " + fakeserver.WireTime + " kicked #dev",
			Message{Kind: "NOTICE", ID: 12, From: 1001, FromNick: "bob", Time: at, Group: "#dev", Text: "kicked"}, false, "1001"},
	} {
		l := line(t, tc.wire)
		if !IsAckable(l.Kind) {
			t.Errorf("IsAckable(%q) = false", l.Kind)
		}
		got, err := ParseMessage(l)
		if err != nil {
			t.Errorf("ParseMessage(%q): %v", tc.wire, err)
			continue
		}
		if !got.Time.Equal(tc.want.Time) {
			t.Errorf("ParseMessage(%q): time %v", tc.wire, got.Time)
		}
		got.Time = tc.want.Time
		if got != tc.want {
			t.Errorf("ParseMessage(%q) =\n %+v, want\n %+v", tc.wire, got, tc.want)
		}
		if got.IsChat() != tc.chat || got.Conversation() != tc.conv {
			t.Errorf("ParseMessage(%q): IsChat %v, Conversation %q; want %v, %q", tc.wire, got.IsChat(), got.Conversation(), tc.chat, tc.conv)
		}
	}
}

func TestParseMessageMalformed(t *testing.T) {
	for _, wire := range []string{
		"MSG 0 1001 bob " + fakeserver.WireTime + " id 0",
		"MSG x 1001 bob " + fakeserver.WireTime + " id not a number",
		"MSG -7 1001 bob " + fakeserver.WireTime + " negative id",
		"MSG 7 bob bob " + fakeserver.WireTime + " from is a nickname",
		"MSG 7 0 bob " + fakeserver.WireTime + " from 0",
		"MSG 7 1001 bob now not a time",
		"MSG 99999999999999999999 1001 bob " + fakeserver.WireTime + " id overflows",
		"PRESENCE 1001 bob online",
		"NUDGE 1001 bob " + fakeserver.WireTime,
		"OFFER t 1001 bob " + fakeserver.WireTime + " chat",
		"250 7 stored 1001 " + fakeserver.WireTime,
	} {
		if m, err := ParseMessage(line(t, wire)); err == nil {
			t.Errorf("ParseMessage(%q) = %+v, want an error", wire, m)
		}
	}
	for _, l := range []protocol.Line{
		{},
		{Kind: "MSG", Args: []string{"7", "1001", "bob", fakeserver.WireTime}},
		{Kind: "GMSG", Args: []string{"7", "1001", "bob", fakeserver.WireTime, "hello"}}, // no group
		{Kind: "msg", Args: []string{"7", "1001", "bob", fakeserver.WireTime, "hi"}},
	} {
		if m, err := ParseMessage(l); err == nil {
			t.Errorf("ParseMessage(%+v) = %+v, want an error", l, m)
		}
	}
	for _, kind := range []string{"PRESENCE", "NUDGE", "OFFER", "CANCEL", "PING", "BYE", "", "msg"} {
		if IsAckable(kind) {
			t.Errorf("IsAckable(%q) = true", kind)
		}
	}
}

func TestPresenceEvent(t *testing.T) {
	for _, tc := range []struct {
		wire string
		want Presence
	}{
		{"PRESENCE 1001 bob online", Presence{User: User{1001, "bob"}, State: "online"}},
		{"PRESENCE 1001 bob offline", Presence{User: User{1001, "bob"}, State: "offline"}},
		{"PRESENCE 1001 bob away gone  fishing ", Presence{User: User{1001, "bob"}, State: "away", Status: "gone  fishing "}},
		{"PRESENCE 1002 小明 online " + ansi, Presence{User: User{1002, "小明"}, State: "online", Status: ansi}},
	} {
		got, err := PresenceEvent(line(t, tc.wire))
		if err != nil || got != tc.want {
			t.Errorf("PresenceEvent(%q) = %+v, %v; want %+v", tc.wire, got, err, tc.want)
		}
	}
	for _, l := range []protocol.Line{
		line(t, "PRESENCE bob bob online"),
		line(t, "PRESENCE 0 bob online"),
		line(t, "MSG 7 1001 bob "+fakeserver.WireTime+" hi"),
		{Kind: "PRESENCE", Args: []string{"1001", "bob"}},
		{},
	} {
		if p, err := PresenceEvent(l); err == nil {
			t.Errorf("PresenceEvent(%+v) = %+v, want an error", l, p)
		}
	}
}

func TestParseSent(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		text string
		want Sent
		conv string
	}{
		{"7 stored 1001 " + fakeserver.WireTime, Sent{ID: 7, Status: "stored", To: 1001, Time: at}, "1001"},
		{"8 delivered 1002 " + fakeserver.WireTime, Sent{ID: 8, Status: "delivered", To: 1002, Time: at}, "1002"},
		{"9 delivered #dev " + fakeserver.WireTime, Sent{ID: 9, Status: "delivered", Group: "#dev", Time: at}, "#dev"},
		{"10  stored   #小组  " + fakeserver.WireTime, Sent{ID: 10, Status: "stored", Group: "#小组", Time: at}, "#小组"},
	} {
		got, err := parseSent(tc.text)
		if err != nil {
			t.Errorf("parseSent(%q): %v", tc.text, err)
			continue
		}
		if !got.Time.Equal(at) {
			t.Errorf("parseSent(%q): time %v", tc.text, got.Time)
		}
		got.Time = at
		if got != tc.want || got.Conversation() != tc.conv {
			t.Errorf("parseSent(%q) = %+v (conversation %q), want %+v (%q)", tc.text, got, got.Conversation(), tc.want, tc.conv)
		}
	}
	for _, text := range []string{
		"",
		"7",
		"7 stored 1001",
		"x stored 1001 " + fakeserver.WireTime,
		"0 stored 1001 " + fakeserver.WireTime,
		"7 stored bob " + fakeserver.WireTime,
		"7 stored 0 " + fakeserver.WireTime,
		"7 stored 1001 later",
		"message sent",
	} {
		if s, err := parseSent(text); err == nil {
			t.Errorf("parseSent(%q) = %+v, want an error", text, s)
		}
	}
}

func TestParseUser(t *testing.T) {
	for _, tc := range []struct {
		text string
		want User
	}{
		{"1000 alice", User{1000, "alice"}},
		{"1001 bob logged in", User{1001, "bob"}},
		{" 1002  小明 ", User{1002, "小明"}},
	} {
		got, err := parseUser(tc.text)
		if err != nil || got != tc.want {
			t.Errorf("parseUser(%q) = %+v, %v; want %+v", tc.text, got, err, tc.want)
		}
	}
	for _, text := range []string{"", "1000", "alice 1000", "0 alice", "-1 alice", "logged in"} {
		if u, err := parseUser(text); err == nil {
			t.Errorf("parseUser(%q) = %+v, want an error", text, u)
		}
	}
}

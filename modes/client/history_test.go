package client

import (
	"testing"
)

// TestParseHistory: a page's lines as the server writes them, and what a
// client must refuse rather than file under a wrong conversation.
func TestParseHistory(t *testing.T) {
	p, err := ParseHistory(Reply{Code: 210, Text: "2 messages more", Lines: []string{
		"5 2026-11-22T10:00:00.000Z out 1000 alice 1001 hi  there ",
		"7 2026-11-22T10:00:02.000Z in 1002 carol #team \x1b[31m",
	}})
	if err != nil || !p.More || len(p.Msgs) != 2 {
		t.Fatalf("page: %+v, %v", p, err)
	}
	m := p.Msgs[0]
	if m.ID != 5 || !m.Out || m.From != 1000 || m.FromNick != "alice" || m.Conversation != "1001" || m.Text != "hi  there " {
		t.Errorf("first: %+v", m)
	}
	if m := p.Msgs[1]; m.Out || m.Conversation != "#team" || m.Text != "\x1b[31m" || m.Time.Second() != 2 {
		t.Errorf("second: %+v", m)
	}
	if r := p.Msgs[0].Record(); r.ID != 5 || !r.Out || r.Nick != "alice" || r.Text != "hi  there " {
		t.Errorf("record: %+v", r)
	}
	if p, err := ParseHistory(Reply{Code: 210, Text: "0 messages"}); err != nil || p.More || len(p.Msgs) != 0 {
		t.Errorf("empty page: %+v, %v", p, err)
	}
	for _, bad := range []Reply{
		{Text: "pong"},
		{Text: "1 messages", Lines: []string{"x 2026-11-22T10:00:00.000Z in 1001 bob 1001 hi"}},
		{Text: "1 messages", Lines: []string{"5 yesterday in 1001 bob 1001 hi"}},
		{Text: "1 messages", Lines: []string{"5 2026-11-22T10:00:00.000Z sideways 1001 bob 1001 hi"}},
		{Text: "1 messages", Lines: []string{"5 2026-11-22T10:00:00.000Z in 1001 bob ../etc hi"}},
		{Text: "1 messages", Lines: []string{"5 2026-11-22T10:00:00.000Z in 1001 bob # hi"}},
		{Text: "1 messages", Lines: []string{"5 2026-11-22T10:00:00.000Z in 1001"}},
	} {
		if _, err := ParseHistory(bad); err == nil {
			t.Errorf("ParseHistory(%+v) took it", bad)
		}
	}
}

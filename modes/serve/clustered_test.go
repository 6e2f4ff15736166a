package serve

import (
	"errors"
	"strings"
	"testing"
	"time"

	"qchat/modes/serve/dedupe"
)

// A client id record crosses nodes as text and comes back the same; what
// no node writes is refused.
func TestSentIDRecord(t *testing.T) {
	at := time.UnixMilli(1764748800123)
	for _, e := range []dedupe.Entry{
		{Sender: 1000, CID: "k3f9qz2a.7", ID: 812, To: 1001, Time: at},
		{Sender: 1000, CID: "a-b_c", ID: 1 << 40, Group: "#team", Time: at},
	} {
		got, err := parseSentID(appendSentID(nil, e))
		if err != nil || got != e {
			t.Errorf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	for _, bad := range []string{"", "1000 k 812 1001 - 1 x", "x k 812 1001 - 1", "1000 k 0 1001 - 1",
		"1000 k 812 -1 - 1", "1000 k 812 0 - 1", "1000 k 812 1001 #team 1", "1000 k\x00 812 1001 - 1",
		"1000 " + strings.Repeat("k", 33) + " 812 1001 - 1", "1000 k 812 0 # 1", "1000 k 812 0 #\x1b 1", "1000 k 812 1001 - soon"} {
		if _, err := parseSentID([]byte(bad)); !errors.Is(err, errSentID) {
			t.Errorf("parseSentID(%q) = %v, want a refusal", bad, err)
		}
	}
}

// An offer message is checked before anything is done with it.
func TestOfferMsgCheck(t *testing.T) {
	key := "SHA256:" + strings.Repeat("A", 43)
	ticket := strings.Repeat("a", 26)
	good := []offerMsg{
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "file", Summary: "1 10 f.bin", Key: key, Remote: "127.0.0.1:5000", Eps: " 10.0.0.1:5000"},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "[::1]:5000", LinkBy: 1, Secret: ticket},
		{Kind: "refused", Ticket: ticket}, {Kind: "cancel", Ticket: ticket}, {Kind: "gone", Ticket: ticket},
	}
	for _, m := range good {
		if err := m.check(); err != nil {
			t.Errorf("%+v refused: %v", m, err)
		}
	}
	bad := []offerMsg{
		{Kind: "nope", Ticket: ticket},
		{Kind: "gone", Ticket: "short"},
		{Kind: "gone", Ticket: strings.Repeat("A", 26)},
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "shell", Key: key, Remote: "127.0.0.1:5000"},
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "chat", Key: "nokey", Remote: "127.0.0.1:5000"},
		{Kind: "offer", Ticket: ticket, From: 1000, To: 1001, Purpose: "file", Summary: "1 1 \x1b[2J", Key: key, Remote: "127.0.0.1:5000"},
		{Kind: "offer", Ticket: ticket, From: 0, To: 1001, Purpose: "chat", Key: key, Remote: "127.0.0.1:5000"},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "nowhere", LinkBy: 1, Secret: ticket},
		{Kind: "accepted", Ticket: ticket, Key: key, Remote: "h:1", LinkBy: 1, Secret: ticket, Eps: " h:1 junk"},
	}
	for _, m := range bad {
		if err := m.check(); !errors.Is(err, errOfferMsg) {
			t.Errorf("%+v taken: %v", m, err)
		}
	}
}

package client

import (
	"strings"
	"testing"

	"qchat/protocol"
)

func TestParseOffline(t *testing.T) {
	l, err := protocol.ParseLine([]byte("OFFLINE 7 1000 alice 2026-11-22T10:00:00.000Z 20971520 my report.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseOffline(l)
	if err != nil || f.ID != 7 || f.From != 1000 || f.FromNick != "alice" || f.Size != 20971520 || f.Name != "my report.pdf" {
		t.Fatalf("ParseOffline = %+v, %v", f, err)
	}
	for _, bad := range []string{
		"OFFLINE 0 1000 alice 2026-11-22T10:00:00.000Z 1 x",
		"OFFLINE 7 1000 alice yesterday 1 x",
		"OFFLINE 7 1000 alice 2026-11-22T10:00:00.000Z -1 x",
		"OFFLINE 7 1000 alice 2026-11-22T10:00:00.000Z 1",
	} {
		l, err := protocol.ParseLine([]byte(bad))
		if err != nil {
			continue
		}
		if f, err := ParseOffline(l); err == nil {
			t.Errorf("%q parsed as %+v", bad, f)
		}
	}
	tk, err := parseHostTicket("abc 2026-11-22T10:02:00.000Z SHA256:K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA s3cret", true)
	if err != nil || tk.Peer != 0 || !tk.Offerer || tk.RelaySecret != "s3cret" {
		t.Fatalf("parseHostTicket = %+v, %v", tk, err)
	}
	if _, err := parseHostTicket("abc 2026-11-22T10:02:00.000Z SHA256:short s3cret", true); err == nil {
		t.Error("a ticket without a valid server key was taken")
	}
}

// FuzzOffline feeds what the server says of offline files (the OFFLINE
// event, the notices, the PUT and GET tickets) to their parsers: no
// panic, and what parses holds a positive id and a size that is not
// negative.
func FuzzOffline(f *testing.F) {
	f.Add("OFFLINE 7 1000 alice 2026-11-22T10:00:00.000Z 20971520 my report.pdf")
	f.Add("NOTICE 9 1001 bob 2026-11-22T10:00:00.000Z offline-taken 7 my report.pdf")
	f.Add("NOTICE 9 1001 bob 2026-11-22T10:00:00.000Z offline-expired x")
	f.Add("260 abc 2026-11-22T10:02:00.000Z SHA256:K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA s3cret")
	f.Fuzz(func(t *testing.T, s string) {
		if tk, err := parseHostTicket(strings.TrimPrefix(s, "260 "), false); err == nil && (tk.ID == "" || !protocol.ValidLinkKey(tk.PeerKey)) {
			t.Fatalf("ticket %+v from %q", tk, s)
		}
		l, err := protocol.ParseLine([]byte(s))
		if err != nil {
			return
		}
		if o, err := ParseOffline(l); err == nil && (o.ID <= 0 || o.From <= 0 || o.Size < 0 || o.Name == "") {
			t.Fatalf("OFFLINE %+v from %q", o, s)
		}
		if m, err := ParseMessage(l); err == nil && m.File != nil && (m.File.ID <= 0 || m.File.Name == "") {
			t.Fatalf("notice %+v from %q", m.File, s)
		}
	})
}

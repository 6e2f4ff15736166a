package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"qchat/protocol"
)

const testFP = "SHA256:jBX8t1CCrVHvpHbWXrs59tdpla9U7kw221mQeSRpGss"

func TestDiscoverRequest(t *testing.T) {
	req := protocol.AppendDiscoverRequest(nil, "abcDEF123")
	if len(req) != protocol.DiscoveryRequestSize {
		t.Fatalf("request is %d bytes, want %d", len(req), protocol.DiscoveryRequestSize)
	}
	if !bytes.HasPrefix(req, []byte("QCHAT-DISCOVER 1 abcDEF123\n...")) {
		t.Fatalf("request starts %q", req[:40])
	}
	nonce, err := protocol.ParseDiscoverRequest(req)
	if err != nil || nonce != "abcDEF123" {
		t.Fatalf("parse = %q, %v", nonce, err)
	}
	pad := func(s string, n int) []byte { return append([]byte(s), bytes.Repeat([]byte{0xff}, n-len(s))...) }
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"short: would amplify", req[:protocol.DiscoveryRequestSize-1], protocol.ErrDiscoveryShort},
		{"unpadded", []byte("QCHAT-DISCOVER 1 abcDEF123\n"), protocol.ErrDiscoveryShort},
		{"oversized", pad("QCHAT-DISCOVER 1 abcDEF123\n", protocol.MaxDiscoveryRequest+1), protocol.ErrDiscoveryMalformed},
		{"binary padding is fine", pad("QCHAT-DISCOVER 1 abcDEF123\n", 600), nil},
		{"other version", pad("QCHAT-DISCOVER 2 abcDEF123\n", 512), protocol.ErrDiscoveryMalformed},
		{"short nonce", pad("QCHAT-DISCOVER 1 abc\n", 512), protocol.ErrDiscoveryMalformed},
		{"nonce with escape", pad("QCHAT-DISCOVER 1 abc\x1b[2Jdefgh\n", 512), protocol.ErrDiscoveryMalformed},
		{"no line end", bytes.Repeat([]byte("x"), 512), protocol.ErrDiscoveryMalformed},
		{"lower case verb", pad("qchat-discover 1 abcDEF123\n", 512), protocol.ErrDiscoveryMalformed},
		{"an answer is not a request", pad("QCHAT-SERVER 1 abcDEF123\n", 512), protocol.ErrDiscoveryMalformed},
		{"empty", nil, protocol.ErrDiscoveryMalformed},
	} {
		_, err := protocol.ParseDiscoverRequest(tc.in)
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestDiscoverAnswer(t *testing.T) {
	a := protocol.Announcement{Nonce: "abcDEF123", Instance: "inst0001", Port: 4000, Proto: "qchat/1", Fingerprint: testFP, Name: "lan host"}
	b, err := protocol.AppendDiscoverAnswer(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	if want := "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 " + testFP + " lan host\n"; string(b) != want {
		t.Fatalf("answer = %q, want %q", b, want)
	}
	got, err := protocol.ParseDiscoverAnswer(b)
	if err != nil || got != a {
		t.Fatalf("parse = %+v, %v", got, err)
	}
	a.Fingerprint = ""
	b, _ = protocol.AppendDiscoverAnswer(nil, a)
	if !bytes.Contains(b, []byte(" qchat/1 - lan host\n")) {
		t.Fatalf("no TLS: %q", b)
	}
	if got, err := protocol.ParseDiscoverAnswer(b); err != nil || got.Fingerprint != "" {
		t.Fatalf("no TLS parse = %+v, %v", got, err)
	}

	// A server's own name is cleaned and cut so the answer stays one line.
	a.Name = "evil\nQCHAT-SERVER 1 x\x1b[2J\xff" + strings.Repeat("名", 100)
	b, err = protocol.AppendDiscoverAnswer(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	got, err = protocol.ParseDiscoverAnswer(b)
	if err != nil {
		t.Fatalf("cleaned answer %q: %v", b, err)
	}
	if !strings.HasPrefix(got.Name, "evil?QCHAT-SERVER 1 x?[2J?名") || len(got.Name) > protocol.MaxDiscoveryName || !utf8.ValidString(got.Name) {
		t.Fatalf("cleaned name = %q (%d bytes)", got.Name, len(got.Name))
	}
	if len(b) > protocol.MaxDiscoveryAnswer {
		t.Fatalf("answer of %d bytes", len(b))
	}

	for _, tc := range []struct{ name, in string }{
		{"two lines", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - a\nQCHAT-SERVER 1 abcDEF123 inst0001 4001 qchat/1 - b\n"},
		{"no line end", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - a"},
		{"port 0", "QCHAT-SERVER 1 abcDEF123 inst0001 0 qchat/1 - a\n"},
		{"port too big", "QCHAT-SERVER 1 abcDEF123 inst0001 65536 qchat/1 - a\n"},
		{"port with sign", "QCHAT-SERVER 1 abcDEF123 inst0001 +4000 qchat/1 - a\n"},
		{"port with zero", "QCHAT-SERVER 1 abcDEF123 inst0001 04000 qchat/1 - a\n"},
		{"bad fingerprint", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 SHA256:xx a\n"},
		{"no name", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 -\n"},
		{"empty name", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - \n"},
		{"name with NUL", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - a\x00b\n"},
		{"name with CR", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - a\rb\n"},
		{"invalid UTF-8", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - a\xffb\n"},
		{"long name", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - " + strings.Repeat("n", 129) + "\n"},
		{"oversized", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - " + strings.Repeat("n", 500) + "\n"},
		{"proto with control", "QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat\x1b/1 - a\n"},
		{"bad nonce", "QCHAT-SERVER 1 abc inst0001 4000 qchat/1 - a\n"},
		{"version 2", "QCHAT-SERVER 2 abcDEF123 inst0001 4000 qchat/1 - a\n"},
		{"a request", string(protocol.AppendDiscoverRequest(nil, "abcDEF123"))},
	} {
		if _, err := protocol.ParseDiscoverAnswer([]byte(tc.in)); !errors.Is(err, protocol.ErrDiscoveryMalformed) {
			t.Errorf("%s: err = %v, want malformed", tc.name, err)
		}
	}
	// Control characters other than CR, LF and NUL may come in a name:
	// the client escapes them when it shows it.
	got, err = protocol.ParseDiscoverAnswer([]byte("QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - \x1b]0;pwned\x07 \u202eevil\n"))
	if err != nil || got.Name != "\x1b]0;pwned\x07 \u202eevil" {
		t.Fatalf("hostile name: %+v, %v", got, err)
	}
	if esc := protocol.Escape(got.Name); strings.ContainsAny(esc, "\x1b\x07\u202e") {
		t.Fatalf("escaped name still holds controls: %q", esc)
	}
}

// FuzzDiscoverRequest: never panics; what it takes is padded to the
// least size and holds a valid nonce on its first line.
func FuzzDiscoverRequest(f *testing.F) {
	f.Add(protocol.AppendDiscoverRequest(nil, "abcDEF123"))
	f.Add([]byte("QCHAT-DISCOVER 1 abcDEF123\n"))
	f.Add(append([]byte("QCHAT-DISCOVER 1 abcDEF123\n"), bytes.Repeat([]byte{0}, 1100)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		nonce, err := protocol.ParseDiscoverRequest(b)
		if err != nil {
			return
		}
		if len(b) < protocol.DiscoveryRequestSize || len(b) > protocol.MaxDiscoveryRequest || !protocol.ValidNonce(nonce) {
			t.Fatalf("took %d bytes, nonce %q", len(b), nonce)
		}
		if again, err := protocol.ParseDiscoverRequest(protocol.AppendDiscoverRequest(nil, nonce)); err != nil || again != nonce {
			t.Fatalf("round trip of %q: %q, %v", nonce, again, err)
		}
	})
}

// FuzzDiscoverAnswer: never panics; what it takes fits the limits, has a
// name without CR, LF or NUL, and is written back as the same answer.
func FuzzDiscoverAnswer(f *testing.F) {
	f.Add([]byte("QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 " + testFP + " lan host\n"))
	f.Add([]byte("QCHAT-SERVER 1 abcDEF123 inst0001 4000 qchat/1 - \x1b[2J\u202e名\n"))
	f.Add([]byte("QCHAT-SERVER 1 abcDEF123 inst0001 65535 qchat/1 - a\nb\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := protocol.ParseDiscoverAnswer(b)
		if err != nil {
			return
		}
		if len(b) > protocol.MaxDiscoveryAnswer || a.Port < 1 || a.Port > 65535 || strings.ContainsAny(a.Name, "\r\n\x00") ||
			!utf8.ValidString(a.Name) || len(a.Name) > protocol.MaxDiscoveryName {
			t.Fatalf("took %q as %+v", b, a)
		}
		// Names the server side would clean are not written back alike.
		if strings.ContainsFunc(a.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return
		}
		again, err := protocol.AppendDiscoverAnswer(nil, a)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip of %q: %q, %v", b, again, err)
		}
	})
}

package protocol_test

import (
	"strings"
	"testing"

	"qchat/protocol"
)

func TestValidNick(t *testing.T) {
	good := []string{
		"bob", "小明", "Zoë", "a", "bob_2", "x-y.z", "007bond", "1.5", "-1", "अनु", "José", "Ω",
		"名" + strings.Repeat("字", protocol.MaxNick-1), // 32 runes, 96 bytes
		strings.Repeat("b", protocol.MaxNick),
		"e\u0301", // combining mark
	}
	for _, s := range good {
		if err := protocol.ValidNick(s); err != nil {
			t.Errorf("ValidNick(%q) = %v, want ok", s, err)
		}
	}
	bad := []string{
		"", "1001", "0", "007", // all digits would read as an id
		"bob smith", " bob", "bob ", "\tbob", "bo\nb", "bo\rb", "bo\x00b", "\x1b[31mbob", "bob\x7f",
		"bob\u0085", "bob\u00a0", "a\u3000b", // C1 control, NBSP, ideographic space
		"ev\u202eil", "a\u200bb", "a\u2066b", // bidi override, zero width space, isolate
		"bob@x", "a/b", "a:b", "a,b", "🙂", "\xff", "bo\xffb",
		strings.Repeat("字", protocol.MaxNick+1),
		strings.Repeat("b", protocol.MaxNick+1),
		// digits of any script only: they read as a number
		"１２３", "٤٢", "۱۲", "१२३", "߁߂", "๑๒", "1٢", "𝟏𝟐",
		// what PRECIS refuses: compatibility forms, the Bidi rule
		"ﬁsh", "Ⅸ", "ⓑob", "bob١٢",
	}
	for _, s := range bad {
		err := protocol.ValidNick(s)
		if err == nil {
			t.Errorf("ValidNick(%q) = nil, want an error", s)
			continue
		}
		if codeOf(err) != protocol.CodeSyntax {
			t.Errorf("ValidNick(%q) = %v, want code %d", s, err, protocol.CodeSyntax)
		}
	}
}

// TestValidNickNeverAnID: no valid nickname is also a valid id, so "USER x"
// is never ambiguous.
func TestValidNickNeverAnID(t *testing.T) {
	for _, s := range []string{"1", "42", "0042", "9223372036854775807", "99999999999999999999"} {
		if protocol.ValidNick(s) == nil {
			t.Errorf("ValidNick(%q) accepted a numeric name", s)
		}
	}
	for _, s := range []string{"٤٢", "４２", "1e3", "+42"} { // other scripts' digits, fullwidth, ...
		if protocol.ValidNick(s) == nil {
			if _, ok := protocol.ParseID(s); ok {
				t.Errorf("%q is both a nickname and an id", s)
			}
		}
	}
}

func TestValidPassword(t *testing.T) {
	good := []string{"s3cret", "correct horse battery staple", "密码很长", "p", strings.Repeat("p", protocol.MaxPassword), "a  b", `~!@#$%^&*()"'\`}
	for _, s := range good {
		if err := protocol.ValidPassword(s); err != nil {
			t.Errorf("ValidPassword(%q) = %v", s, err)
		}
	}
	bad := []string{
		"", strings.Repeat("p", protocol.MaxPassword+1),
		strings.Repeat("密", protocol.MaxPassword/3+1), // 75 bytes: the limit is in bytes
		" lead", "trail ", " ", "\tx", "a\tb", "a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb", "\xff\xfe",
	}
	for _, s := range bad {
		if err := protocol.ValidPassword(s); codeOf(err) != protocol.CodeSyntax {
			t.Errorf("ValidPassword(%q) = %v, want code %d", s, err, protocol.CodeSyntax)
		}
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		s  string
		id int64
		ok bool
	}{
		{"1", 1, true},
		{"1001", 1001, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"0", 0, false},
		{"00", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"bob", 0, false},
		{"12a", 0, false},
		{"9223372036854775808", 0, false},
		{"٤٢", 0, false},
		{"４２", 0, false},
	}
	for _, tt := range tests {
		id, ok := protocol.ParseID(tt.s)
		if ok != tt.ok || (ok && id != tt.id) {
			t.Errorf("ParseID(%q) = %d, %v; want %d, %v", tt.s, id, ok, tt.id, tt.ok)
		}
	}
}

// confusable reports whether two nicknames share a key.
func confusable(a, b string) bool {
	for _, ka := range protocol.NickKeys(a) {
		for _, kb := range protocol.NickKeys(b) {
			if ka == kb {
				return true
			}
		}
	}
	return false
}

func TestNickKeys(t *testing.T) {
	same := [][2]string{
		{"alice", "Alice"},
		{"alice", "ALICE"},
		{"alice", "\u0430lice"}, // Cyrillic а
		{"alice", "ａｌｉｃｅ"},      // fullwidth
		{"alice", "ＡＬＩＣＥ"},
		{"paypal", "p\u0430yp\u0430l"},
		{"bob0", "bobO"},
		{"bob0", "bobo"},
		{"modern", "rnodern"},
		{"Ill", "lll"},
		{"bob1", "bobl"},
		{"josé", "jose\u0301"}, // composed and decomposed
		{"bob12", "bob１２"},
		// i, I and l and their look-alikes (UTS #39 and tallStroke)
		{"lily", "\u04C0ily"}, // Cyrillic capital palochka
		{"lily", "\u04CFily"}, // Cyrillic small palochka
		{"Lily", "\u04CFily"}, //
		{"Iily", "\u04CFily"}, // and capital I
		{"iily", "\u04CFily"}, // and i, as UTS #39 has it
		{"lily", "\uA7FEily"}, // Latin epigraphic I longa
		{"lily", "\u01C0ily"}, // Latin letter dental click
		{"lily", "\u2D4Fily"}, // Tifinagh yan
		{"lily", "\u16C1ily"}, // runic isaz
		{"lily", "\uA4F2ily"}, // Lisu letter i
		{"iris", "\u03B9ris"}, // Greek small iota
		{"iris", "\u1FBEris"}, // Greek prosgegrammeni
		{"Iris", "\u0399ris"}, // Greek capital iota
		{"iris", "\u0131ris"}, // dotless i
		{"iris", "\u0456ris"}, // Cyrillic і
		{"Iris", "\u0406ris"}, // Cyrillic І
		{"iris", "\u0269ris"}, // Latin small iota
		{"lris", "\u0399ris"}, // capital iota looks like l
		{"bob", "b\u043Eb"},   // Cyrillic о
		{"sam", "\u0455am"},   // Cyrillic ѕ
		{"nico", "nic\u03BF"}, // Greek omicron
	}
	for _, p := range same {
		if !confusable(p[0], p[1]) {
			t.Errorf("NickKeys(%q) = %q, NickKeys(%q) = %q; want a key in common", p[0], protocol.NickKeys(p[0]), p[1], protocol.NickKeys(p[1]))
		}
	}
	differ := [][2]string{
		{"alice", "alicia"},
		{"bob", "bobby"},
		{"小明", "小红"},
		{"bob12", "bob۱۲"}, // Extended Arabic-Indic digits are not confusable with 1 and 2
		{"a.b", "a_b"},
		{"ann", "anne"},
		{"ill", "lll"},
		{"ALICE", "allce"},
	}
	for _, p := range differ {
		if confusable(p[0], p[1]) {
			t.Errorf("NickKeys(%q) = %q and NickKeys(%q) = %q share a key; want them apart", p[0], protocol.NickKeys(p[0]), p[1], protocol.NickKeys(p[1]))
		}
	}
	// A nickname accepted before PRECIS was checked still has keys.
	if k := protocol.NickKeys("bob١٢"); len(k) == 0 || k[0] == "" {
		t.Error("no key for a nickname PRECIS refuses")
	}
}

package protocol_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"qchat/protocol"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		// unchanged
		{"", ""},
		{"hello, world", "hello, world"},
		{"你好，世界", "你好，世界"},
		{"emoji 🙂👍🏽 and ZWJ 👩‍💻", "emoji 🙂👍🏽 and ZWJ 👩‍💻"},
		{"Zoë e\u0301 ñ", "Zoë e\u0301 ñ"},
		{`back\slash \x1b stays`, `back\slash \x1b stays`},
		{"\uFFFD", "\uFFFD"}, // a real replacement character is text
		// C0, DEL
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"a\tb", `a\tb`},
		{"a\nb\rc", `a\x0ab\x0dc`},
		{"\x00\x01\x7f", `\x00\x01\x7f`},
		{"bell\a", `bell\x07`},
		// C1 controls, as UTF-8 and as raw bytes
		{"\u009b31m", `\u009b31m`},
		{"\u0085next", `\u0085next`},
		{"\x9b31m", `\x9b31m`},
		// bidi
		{"file\u202Egpj.exe", `file\u202egpj.exe`},
		{"\u202A\u202B\u202C\u202D", `\u202a\u202b\u202c\u202d`},
		{"\u2066x\u2069", `\u2066x\u2069`},
		{"\u200E\u200F\u061C", `\u200e\u200f\u061c`},
		// invalid UTF-8
		{"\xff\xfe", `\xff\xfe`},
		{"ok\xe4\xbd", `ok\xe4\xbd`}, // truncated 你
		{"\xc0\xaf", `\xc0\xaf`},     // overlong
		{"\xed\xa0\x80", `\xed\xa0\x80`},
		{"你\x1b好", `你\x1b好`},
	}
	for _, tt := range tests {
		got := protocol.Escape(tt.in)
		if got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkTerminalSafe(t, tt.in, got)
		if again := protocol.Escape(got); again != got {
			t.Errorf("Escape not idempotent: Escape(%q) = %q", got, again)
		}
	}
}

// TestEscapeEveryRune runs every rune of the BMP and the edges of the other
// planes through Escape, alone and between ASCII letters.
func TestEscapeEveryRune(t *testing.T) {
	check := func(r rune) {
		s := "a" + string(r) + "b"
		got := protocol.Escape(s)
		checkTerminalSafe(t, s, got)
		if !unsafeForTerminal(r) && r != '\t' && got != s {
			t.Fatalf("Escape(%q) = %q: a printable rune was changed", s, got)
		}
		if unsafeForTerminal(r) && got == s {
			t.Fatalf("Escape(%q) left %U", s, r)
		}
	}
	for r := rune(0); r < 0x10000; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		check(r)
	}
	for _, r := range []rune{0x10000, 0x1f642, 0xe0001, 0xe007f, 0x10ffff} {
		check(r)
	}
	for b := 0x80; b <= 0xff; b++ { // every lone high byte is invalid UTF-8
		s := "a" + string([]byte{byte(b)}) + "b"
		checkTerminalSafe(t, s, protocol.Escape(s))
	}
}

func TestEscapeLongMixed(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		b.WriteString("消息")
		b.WriteByte(byte(i))
		b.WriteString("\u202e🙂")
	}
	in := b.String()
	out := protocol.Escape(in)
	checkTerminalSafe(t, in, out)
	if utf8.RuneCountInString(out) < utf8.RuneCountInString(in) {
		t.Error("Escape lost text")
	}
	if !strings.Contains(out, "消息") || !strings.Contains(out, "🙂") || !strings.Contains(out, `\u202e`) {
		t.Error("Escape dropped or mangled text")
	}
}

package protocol

import (
	"strings"
	"unicode/utf8"
)

// Escape makes peer-controlled text safe to print on a terminal: control
// characters (C0, DEL, C1), bidirectional overrides and invalid UTF-8 are
// written as visible escapes (\x1b, \u202e, \xff); everything else, Chinese
// and emoji included, passes unchanged. No ANSI sequence from a peer survives.
func Escape(s string) string {
	if safeForTerminal(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteByte(hexDigit[s[i]>>4])
			b.WriteByte(hexDigit[s[i]&15])
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hexDigit[r>>4])
			b.WriteByte(hexDigit[r&15])
		case unsafeRune(r):
			b.WriteString(`\u`)
			for shift := 12; shift >= 0; shift -= 4 {
				b.WriteByte(hexDigit[(r>>shift)&15])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

const hexDigit = "0123456789abcdef"

func safeForTerminal(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		} else if c >= 0x80 {
			// slow path for non-ASCII
			for _, r := range s[i:] {
				if r == utf8.RuneError || r < 0x20 || r == 0x7f || unsafeRune(r) {
					return false
				}
			}
			return utf8.ValidString(s[i:])
		}
	}
	return true
}

// unsafeRune reports C1 controls and the Unicode formatting characters that
// reorder or hide text on a terminal (bidi overrides and isolates).
func unsafeRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f ||
		r >= 0x202a && r <= 0x202e ||
		r >= 0x2066 && r <= 0x2069 ||
		r == 0x200e || r == 0x200f || r == 0x061c
}

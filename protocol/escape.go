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

// SafeJSON rewrites encoded JSON so that it is safe on a terminal too: DEL,
// C1 controls and bidi formatting characters, which encoding/json leaves
// raw, become \u escapes. They can occur only inside strings, where the
// escape decodes to the same text, so the JSON means exactly what it did.
func SafeJSON(b []byte) []byte {
	clean := true
	for _, c := range b {
		if c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean || safeForTerminal(string(b)) {
		return b
	}
	out := make([]byte, 0, len(b)+12)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == 0x7f || unsafeRune(r) {
			out = append(out, '\\', 'u')
			for shift := 12; shift >= 0; shift -= 4 {
				out = append(out, hexDigit[(r>>shift)&15])
			}
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

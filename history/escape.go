package history

import (
	"errors"
	"strings"
	"unicode/utf8"
)

var errEscape = errors.New("bad escape")

const hexDigit = "0123456789abcdef"

// appendEscaped appends s to b in the reversible escaped form described in
// the package comment. The result is valid UTF-8 without any byte below 0x20,
// without DEL, C1 controls or bidi formatting characters.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 0x20 && c < 0x7f && c != '\\':
			b = append(b, c)
			i++
			continue
		case c == '\\':
			b = append(b, '\\', '\\')
			i++
			continue
		case c == '\t':
			b = append(b, '\\', 't')
			i++
			continue
		case c == '\n':
			b = append(b, '\\', 'n')
			i++
			continue
		case c == '\r':
			b = append(b, '\\', 'r')
			i++
			continue
		case c < 0x80: // other C0 controls and DEL
			b = append(b, '\\', 'x', hexDigit[c>>4], hexDigit[c&15])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, '\\', 'x', hexDigit[c>>4], hexDigit[c&15])
		case hiddenRune(r):
			b = append(b, '\\', 'u',
				hexDigit[r>>12&15], hexDigit[r>>8&15], hexDigit[r>>4&15], hexDigit[r&15])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// hiddenRune reports the runes other than C0 and DEL that a terminal acts on
// instead of showing: C1 controls and the bidi overrides, isolates and marks
// that reorder text.
func hiddenRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f ||
		r >= 0x202a && r <= 0x202e ||
		r >= 0x2066 && r <= 0x2069 ||
		r == 0x200e || r == 0x200f || r == 0x061c
}

// unescape reverses appendEscaped. It is strict: an unknown or short escape,
// a \u escape naming a surrogate, or a raw control byte (which the writer
// never produces) is an error, so that a damaged line is skipped rather than
// misread.
func unescape(s string) (string, error) {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c < 0x20 || c == 0x7f {
			plain = false
			break
		}
	}
	if plain {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", errEscape
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", errEscape
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'x':
			v, ok := unhex(s[i+1:], 2)
			if !ok {
				return "", errEscape
			}
			b.WriteByte(byte(v))
			i += 2
		case 'u':
			v, ok := unhex(s[i+1:], 4)
			if !ok || v >= 0xd800 && v <= 0xdfff {
				return "", errEscape
			}
			b.WriteRune(rune(v))
			i += 4
		default:
			return "", errEscape
		}
	}
	return b.String(), nil
}

// unhex reads exactly n hex digits from the start of s.
func unhex(s string, n int) (int, bool) {
	if len(s) < n {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[:n]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

package protocol

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidNick checks a nickname: 1 to MaxNick letters, digits, '_', '-' or '.'
// (any script: 小明 is fine), with at least one non-digit so that a nickname
// can never be read as a numeric id.
func ValidNick(s string) error {
	n := utf8.RuneCountInString(s)
	if n == 0 || n > MaxNick {
		return Errorf(CodeSyntax, "nickname must be 1 to %d characters", MaxNick)
	}
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '_' || r == '-' || r == '.':
		case unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r):
		default:
			return Errorf(CodeSyntax, "nickname may hold letters, digits, '_', '-' and '.' only")
		}
	}
	if digits == n {
		return Errorf(CodeSyntax, "nickname must not be all digits (that is an id)")
	}
	return nil
}

// ValidPassword checks a password: 1 to MaxPassword bytes of UTF-8 without
// control characters, not starting or ending with a space.
func ValidPassword(s string) error {
	switch {
	case s == "" || len(s) > MaxPassword:
		return Errorf(CodeSyntax, "password must be 1 to %d bytes", MaxPassword)
	case !utf8.ValidString(s) || hasControl(s):
		return Errorf(CodeSyntax, "password holds control characters")
	case strings.TrimSpace(s) != s:
		return Errorf(CodeSyntax, "password must not start or end with a space")
	}
	return nil
}

// ParseID reads a numeric user id (positive, decimal, no sign).
func ParseID(s string) (int64, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

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

// MaxGroup is the longest group name, in characters, without its '#'.
const MaxGroup = 32

// GroupName reads a group name as written in a command, "#dev" or "dev",
// and returns it without the '#': 1 to MaxGroup letters (any script),
// digits, '_', '-' or '.'. On the wire and on screen a group is "#" + name.
func GroupName(s string) (string, error) {
	name := strings.TrimPrefix(s, "#")
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxGroup {
		return "", Errorf(CodeSyntax, "group name must be 1 to %d characters", MaxGroup)
	}
	for _, r := range name {
		if !nameRune(r) {
			return "", Errorf(CodeSyntax, "group name may only hold letters, digits, '_', '-' and '.'")
		}
	}
	return name, nil
}

func nameRune(r rune) bool {
	return r == '_' || r == '-' || r == '.' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)
}

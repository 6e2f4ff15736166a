package protocol

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/secure/precis"
)

// ValidNick checks a new nickname: 1 to MaxNick letters, digits, '_', '-'
// or '.' (any script: 小明 is fine), not made only of digits of any script
// (１２, ٤٢: a nickname must never read as a numeric id), and one that
// PRECIS (RFC 8265, UsernameCasePreserved) accepts: no compatibility forms
// such as ﬁ or Ⅸ, and right-to-left text that follows the Bidi rule.
// Whether it is taken is decided by NickKeys.
func ValidNick(s string) error {
	n := utf8.RuneCountInString(s)
	if n == 0 || n > MaxNick {
		return Errorf(CodeSyntax, "nickname must be 1 to %d characters", MaxNick)
	}
	digits := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Nd, r):
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
	if _, err := precis.UsernameCasePreserved.String(s); err != nil {
		return Errorf(CodeSyntax, "nickname holds characters not allowed in user names (PRECIS: %v)", err)
	}
	return nil
}

// NickKeys returns the forms under which a nickname is compared: a new
// nickname that shares a key with another account's nickname is taken.
// They are Unicode confusables skeletons (UTS #39) of the nickname's PRECIS
// forms (RFC 8265):
//
//   - of UsernameCaseMapped, folded to lower case again after each
//     skeleton step: "alice", "ALICE", "аlice" (Cyrillic а), "ａｌｉｃｅ"
//     (fullwidth) and "bob0"/"bobO"/"bobo" share it;
//   - of UsernameCasePreserved, as written: "Ill" and "lll" share it
//     (capital I looks like l, small i does not).
//
// Each is a skeleton taken again until it no longer changes. A key is for
// comparing, never for showing. A nickname that PRECIS refuses (one
// accepted before these rules) still gets keys, of itself.
//
// Tall strokes that UTS #39 takes for an "i" or not at all, though they
// are drawn like l and I (Cyrillic small palochka ӏ, the lower case of Ӏ;
// Latin epigraphic I longa ꟾ), add the keys of the nickname with them
// written as l: "ӏily" is taken by "lily" (and by "iily", as before).
func NickKeys(s string) []string {
	keys := nickKeys(s)
	if strings.ContainsFunc(s, tallStroke) {
		for _, k := range nickKeys(strings.Map(func(r rune) rune {
			if tallStroke(r) {
				return 'l'
			}
			return r
		}, s)) {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// tallStroke tells a letter drawn as a plain tall vertical stroke, like l
// and I, that the confusables skeleton does not map to l.
func tallStroke(r rune) bool {
	switch r {
	case '\u04CF', // CYRILLIC SMALL LETTER PALOCHKA (its capital Ӏ is l already)
		'\uA7FE': // LATIN EPIGRAPHIC LETTER I LONGA
		return true
	}
	return false
}

func nickKeys(s string) []string {
	folded := skeletonKey(precisOr(precis.UsernameCaseMapped, s, strings.ToLower(s)), true)
	cased := skeletonKey(precisOr(precis.UsernameCasePreserved, s, s), false)
	if cased == folded {
		return []string{folded}
	}
	return []string{folded, cased}
}

func precisOr(p *precis.Profile, s, fallback string) string {
	if out, err := p.String(s); err == nil {
		return out
	}
	return fallback
}

// skeletonKey takes the skeleton of s (and lower-cases it) until that no
// longer changes it.
func skeletonKey(s string, lower bool) string {
	for range 4 {
		k := confusables.Skeleton(s)
		if lower {
			k = strings.ToLower(k)
		}
		if k == s {
			break
		}
		s = k
	}
	return s
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

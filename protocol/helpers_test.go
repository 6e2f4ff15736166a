package protocol_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"qchat/protocol"
)

// codeOf returns the reply code carried by err, or 0 when err is not a
// *protocol.Error.
func codeOf(err error) int {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}

// unsafeForTerminal is the reference definition of what Escape must never
// let through, written from the documentation rather than from escape.go:
// C0, DEL and C1 controls (unicode.IsControl is exactly those) and the
// Unicode bidirectional controls (overrides, embeddings, isolates, marks).
func unsafeForTerminal(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// checkTerminalSafe fails t if s could move the cursor, start an escape
// sequence or reorder text on a terminal.
func checkTerminalSafe(t testing.TB, in, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("Escape(%q) = %q: not valid UTF-8", in, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			t.Fatalf("Escape(%q) = %q: byte %#x at %d", in, s, c, i)
		}
	}
	for i, r := range s {
		if unsafeForTerminal(r) {
			t.Fatalf("Escape(%q) = %q: rune %U at %d", in, s, r, i)
		}
	}
}

// wait runs fn in a goroutine and fails t if it has not returned within d.
// It is a guard against hangs, not a timing assertion.
func wait(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

// oneLine reports whether b is exactly one line: a single LF, at the end,
// and no CR or NUL anywhere.
func oneLine(b []byte) bool {
	s := string(b)
	return strings.Count(s, "\n") == 1 && strings.HasSuffix(s, "\n") && !strings.ContainsAny(s, "\r\x00")
}

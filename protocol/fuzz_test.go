package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
	"unicode/utf8"

	"qchat/protocol"
)

// Fuzz targets for everything that reads bytes from the network. Each has a
// seed corpus in testdata/fuzz/<FuzzName>/ besides the f.Add seeds below.
// Run one with, for example:
//
//	go test -run='^$' -fuzz=FuzzParseCommand -fuzztime=30s ./protocol/

// fuzzSeeds are lines a client or a server may meet: good, odd and hostile.
var fuzzSeeds = []string{
	"LIST",
	"list",
	"  @t1   MSG   1001   hello  big world  ",
	"@a.B_c-9 USER bob",
	"REG 小明 my secret pw",
	"MSG 小明 你好 🙂",
	"MSG 1001 \x1b[2J\x1b]0;pwned\x07",
	"MSG 1001 file\u202egpj.exe \u2066x\u2069",
	"MSG 1001 a\rb",
	"MSG 1001 a\nb",
	"MSG 1001 a\x00b",
	"MSG 1001 \xff\xfe",
	"QUIT gone  for lunch\r",
	"ACK 1,2,3",
	"@t1 MSG id=k7f3q.1a bob hi",
	"MSG resend=k7f3q.1a #team hi  there",
	"MSG id= bob x",
	"MSG to=x bob x",
	"MSG id=a=b bob x",
	"MSG id=x",
	"INFO id=x",
	"PING tok",
	"PASS \t",
	"@ LIST",
	"@t1",
	"\r",
	"",
	"200 ok",
	"@t1 250 42 delivered 1001 2024-05-01T10:00:00.000Z",
	"210-1001 bob online",
	"210-",
	"221",
	"999 x",
	"099 x",
	"2000 x",
	"MSG 42 1001 小明 2024-05-01T10:00:00.000Z hello  big world ",
	"PRESENCE 1001 bob away out to  lunch",
	"BYE shutdown server going down",
	"OFFER 9  bob\tx.txt 1234",
	"@t1 PING x",
}

// FuzzParseCommand checks that ParseCommand never panics, that what it
// accepts is clean and is written back by AppendCommand as a line that
// parses to the same command, and that what it refuses comes as a reply.
func FuzzParseCommand(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("MSG 1001 " + strings.Repeat("x", protocol.MaxLine)))
	f.Fuzz(func(t *testing.T, line []byte) {
		in := string(line) // ParseCommand must not change its input
		c, err := protocol.ParseCommand(line)
		if string(line) != in {
			t.Fatalf("ParseCommand changed its input %q to %q", in, line)
		}
		if errors.Is(err, protocol.ErrEmptyLine) {
			if !reflect.DeepEqual(c, protocol.Command{}) {
				t.Fatalf("ParseCommand(%q) = %#v with ErrEmptyLine", in, c)
			}
			if len(bytes.TrimLeft(bytes.TrimRight(line, "\r"), " ")) != 0 {
				t.Fatalf("ParseCommand(%q): ErrEmptyLine for a line that is not blank", in)
			}
			return
		}
		if c.Tag != "" && !protocol.ValidTag(c.Tag) {
			t.Fatalf("ParseCommand(%q) = %#v, %v: invalid tag kept", in, c, err)
		}
		if err != nil {
			switch codeOf(err) {
			case protocol.CodeUnknown, protocol.CodeSyntax, protocol.CodeTooLong:
			default:
				t.Fatalf("ParseCommand(%q) error %v (%T): want a 500, 501 or 552 reply", in, err, err)
			}
			if c.Args != nil {
				t.Fatalf("ParseCommand(%q) failed with %v but returned args %q", in, err, c.Args)
			}
			return
		}

		syn := protocol.LookupCommand(c.Verb)
		if syn == nil {
			t.Fatalf("ParseCommand(%q) = verb %q, not in the table", in, c.Verb)
		}
		if len(c.Args) < syn.Min || len(c.Args) > syn.Max || (len(c.Args) == 0) != (c.Args == nil) {
			t.Fatalf("ParseCommand(%q) = %q: %d args for %s (%d..%d)", in, c.Args, len(c.Args), c.Verb, syn.Min, syn.Max)
		}
		for i, a := range append([]string{c.Tag, c.Verb}, c.Args...) {
			if strings.ContainsAny(a, "\r\n\x00") || !utf8.ValidString(a) {
				t.Fatalf("ParseCommand(%q) = %#v: field %d %q holds CR, LF, NUL or invalid UTF-8", in, c, i, a)
			}
		}
		for i, a := range c.Args {
			if a == "" || a[0] == ' ' {
				t.Fatalf("ParseCommand(%q): arg %d %q empty or starts with a space", in, i, a)
			}
			if syn.Trailing && i == syn.Max-1 {
				continue
			}
			if strings.ContainsFunc(a, func(r rune) bool { return r == ' ' || r < 0x20 || r == 0x7f }) {
				t.Fatalf("ParseCommand(%q): word arg %d %q holds a space or control", in, i, a)
			}
		}
		checkNames(t, c.Args)

		if c.ClientID != "" && (!syn.ClientID || !protocol.ValidTag(c.ClientID)) {
			t.Fatalf("ParseCommand(%q) = %#v: a client id where none may be", in, c)
		}
		out, err := protocol.AppendCommandID(nil, c.Tag, c.Verb, c.ClientID, c.Resend, c.Args...)
		if err != nil {
			t.Fatalf("ParseCommand(%q) = %#v, which AppendCommand refuses: %v", in, c, err)
		}
		if !oneLine(out) {
			t.Fatalf("AppendCommand(%#v) = %q: not one line", c, out)
		}
		back, err := protocol.ParseCommand(out[:len(out)-1])
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip %q -> %#v -> %q -> %#v, %v", in, c, out, back, err)
		}
	})
}

// checkNames runs the argument validators on network input: they must not
// panic, and what they accept must be safe to show and to store.
func checkNames(t *testing.T, args []string) {
	t.Helper()
	for _, a := range args {
		if protocol.ValidNick(a) == nil {
			if _, isID := protocol.ParseID(a); isID {
				t.Fatalf("ValidNick(%q) accepts a name that reads as an id", a)
			}
			if protocol.Escape(a) != a || strings.ContainsAny(a, " \t@/\\:,") {
				t.Fatalf("ValidNick(%q) accepts a name with spaces, controls or separators", a)
			}
		}
		if protocol.ValidPassword(a) == nil {
			if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.TrimSpace(a) != a {
				t.Fatalf("ValidPassword(%q) accepts controls or outer spaces", a)
			}
		}
		if id, ok := protocol.ParseID(a); ok && (id <= 0 || a[0] < '0' || a[0] > '9') {
			t.Fatalf("ParseID(%q) = %d, true", a, id)
		}
	}
}

// FuzzParseLine checks that ParseLine never panics and that a parsed line
// is either a reply or an event, each with its invariants, and is written
// back by AppendReply or AppendEvent as one line that parses to the same.
func FuzzParseLine(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in := string(line)
		l, err := protocol.ParseLine(line)
		if err != nil {
			if c := codeOf(err); c != protocol.CodeSyntax && c != protocol.CodeTooLong {
				t.Fatalf("ParseLine(%q) error %v (%T): want a 501 or 552 *protocol.Error", in, err, err)
			}
			return
		}
		if l.Tag != "" && !protocol.ValidTag(l.Tag) {
			t.Fatalf("ParseLine(%q): bad tag %q", in, l.Tag)
		}
		for i, a := range append([]string{l.Tag, l.Text, l.Kind}, l.Args...) {
			if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
				t.Fatalf("ParseLine(%q) = %#v: field %d %q holds NUL or invalid UTF-8", in, l, i, a)
			}
		}
		var out []byte
		if !l.IsEvent() {
			if l.Code < 100 || l.Code > 999 || l.Kind != "" || l.Args != nil {
				t.Fatalf("ParseLine(%q) = %#v: bad reply", in, l)
			}
			if (l.Err() != nil) != (l.Code >= 400) {
				t.Fatalf("ParseLine(%q).Err() = %v for code %d", in, l.Err(), l.Code)
			}
			out = protocol.AppendReply(nil, l.Tag, l.Code, l.More, l.Text)
		} else {
			if l.Kind == "" || l.Tag != "" || l.Text != "" || l.More || l.Err() != nil {
				t.Fatalf("ParseLine(%q) = %#v: bad event", in, l)
			}
			if strings.ContainsFunc(l.Kind, func(r rune) bool { return r < 'A' || r > 'Z' }) || len(l.Kind) > 16 {
				t.Fatalf("ParseLine(%q): event kind %q is not an upper-case word", in, l.Kind)
			}
			syn := protocol.LookupEvent(l.Kind)
			for i, a := range l.Args {
				if a == "" || a[0] == ' ' {
					t.Fatalf("ParseLine(%q): arg %d %q empty or starts with a space", in, i, a)
				}
				switch {
				case syn == nil:
					if strings.ContainsFunc(a, unicode.IsSpace) {
						t.Fatalf("ParseLine(%q): arg %d %q of an unknown kind holds a space", in, i, a)
					}
				case syn.Trailing && i == syn.Max-1:
				case strings.ContainsFunc(a, func(r rune) bool { return r == ' ' || r < 0x20 || r == 0x7f }):
					t.Fatalf("ParseLine(%q): word arg %d %q holds a space or control", in, i, a)
				}
			}
			if syn != nil && (len(l.Args) < syn.Min || len(l.Args) > syn.Max) {
				t.Fatalf("ParseLine(%q) = %q: %d args for %s (%d..%d)", in, l.Args, len(l.Args), l.Kind, syn.Min, syn.Max)
			}
			out = protocol.AppendEvent(nil, l.Kind, l.Args...)
		}
		if !oneLine(out) {
			t.Fatalf("ParseLine(%q) = %#v writes back as %q: not one line", in, l, out)
		}
		if strings.ContainsAny(l.Text+strings.Join(l.Args, ""), "\r\n") {
			return // written back with CR and LF made spaces: one line, other text
		}
		back, err := protocol.ParseLine(out[:len(out)-1])
		if err != nil || !sameLine(back, l) {
			t.Fatalf("round trip %q -> %#v -> %q -> %#v, %v", in, l, out, back, err)
		}
	})
}

// FuzzLineReader feeds each input to a LineReader whole, in two halves
// (at the middle and at a fuzzed point), one byte per Read, and with the
// last data arriving together with io.EOF. Every way must give the same
// lines and errors as a plain model of the framing rules, never a line
// holding LF, and never one over the limit.
func FuzzLineReader(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add([]byte(s+"\n"+s+"\r\n"), uint16(i), uint8(64))
	}
	f.Add([]byte("alpha\nbeta\r\n\n  gamma  delta \n你好🙂\r\nx\rz\nlast"), uint16(7), uint8(64))
	f.Add([]byte(strings.Repeat("x", 63)+"\n"+strings.Repeat("y", 64)+"\nok\n"), uint16(64), uint8(64))
	f.Add([]byte(strings.Repeat("x", 62)+"\r\n"+strings.Repeat("y", 63)+"\r\nok"), uint16(63), uint8(64))
	f.Add([]byte("a\n"+strings.Repeat("z", 700)), uint16(600), uint8(64))
	f.Add([]byte(strings.Repeat("short\n", 120)), uint16(511), uint8(8))
	f.Add([]byte("\n\n\r\n\r"), uint16(2), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, maxLen uint8) {
		max := 1 + int(maxLen)%128
		want := frameModel(data, max)
		calls := len(want) + 4
		check := func(how string, r io.Reader) {
			t.Helper()
			lr := protocol.NewLineReader(r, max)
			defer lr.Close()
			if got := collect(t, lr, max, calls); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s, max %d, input %q:\n got %q\nwant %q", how, max, clipq(data), clipAll(got), clipAll(want))
			}
		}
		halves := func(at int) io.Reader {
			return io.MultiReader(bytes.NewReader(data[:at]), bytes.NewReader(data[at:]))
		}
		at := int(split) % (len(data) + 1)
		check("whole", bytes.NewReader(data))
		check("halves", halves(len(data)/2))
		check("split", halves(at))
		check("one byte", iotest.OneByteReader(bytes.NewReader(data)))
		check("data with EOF", iotest.DataErrReader(halves(at)))
		check("one byte, data with EOF", iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(data))))
	})
}

// frameModel is the LineReader's contract written plainly: split at LF; a
// line of max bytes or more (its CR included, its LF not) is reported as
// too long; one CR before the LF is dropped; an unterminated last line
// counts as a line; then EOF.
func frameModel(data []byte, max int) []string {
	var out []string
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(line) >= max {
			out = append(out, tooLong)
			continue
		}
		out = append(out, string(bytes.TrimSuffix(line, []byte{'\r'})))
	}
	return append(out, eof)
}

// FuzzEscape checks that Escape's output is always safe on a terminal,
// that text without anything to escape comes back unchanged (Chinese and
// emoji included), and that escaping twice changes nothing more.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{
		"", "hello, world", "你好，世界", "emoji 🙂👍🏽 and ZWJ 👩‍💻", "Zoë e\u0301 ñ",
		`back\slash \x1b stays`, "\uFFFD", "\x1b[2J\x1b[31mred\x1b[0m", "\x1b]0;pwned\x07",
		"a\tb\nc\rd", "\x00\x01\x7f", "\u009b31m", "\x9b31m", "\u0085",
		"file\u202egpj.exe", "\u202a\u202b\u202c\u202d", "\u2066x\u2069", "\u200e\u200f\u061c",
		"\xff\xfe", "ok\xe4\xbd", "\xc0\xaf", "\xed\xa0\x80", "\U0010ffff", "\u2028\u2029",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := protocol.Escape(s)
		checkTerminalSafe(t, s, out)
		clean := utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeForTerminal)
		if clean != (out == s) {
			t.Fatalf("Escape(%q) = %q: clean input %v, but unchanged %v", s, out, clean, out == s)
		}
		if again := protocol.Escape(out); again != out {
			t.Fatalf("Escape(%q) = %q, escaped again %q", s, out, again)
		}
		if len(out) < len(s) {
			t.Fatalf("Escape(%q) = %q: shorter than its input", s, out)
		}
	})
}

// FuzzNick checks the nickname rules on any string: ValidNick and NickKeys
// never panic, a valid nickname is never an id nor made only of digits of
// any script, its keys are not empty, and it shares a key with itself in
// lower case (names are the same without regard to case).
func FuzzNick(f *testing.F) {
	for _, s := range []string{"alice", "Alice", "\u0430lice", "ａｌｉｃｅ", "bob0", "bobO", "rnodern", "Ill",
		"１２３", "٤٢", "۱۲", "bob١٢", "ﬁsh", "小明", "e\u0301", "1.5", "-1", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys := protocol.NickKeys(s)
		if protocol.ValidNick(s) != nil {
			return
		}
		if _, isID := protocol.ParseID(s); isID {
			t.Fatalf("valid nickname %q is an id", s)
		}
		digits := true
		for _, r := range s {
			digits = digits && unicode.Is(unicode.Nd, r)
		}
		if digits {
			t.Fatalf("valid nickname %q is all digits", s)
		}
		if len(keys) == 0 || keys[0] == "" {
			t.Fatalf("valid nickname %q has no key: %q", s, keys)
		}
		if low := strings.ToLower(s); protocol.ValidNick(low) == nil && protocol.NickKeys(low)[0] != keys[0] {
			t.Fatalf("NickKeys(%q) = %q but NickKeys(%q) = %q", s, keys, low, protocol.NickKeys(low))
		}
	})
}

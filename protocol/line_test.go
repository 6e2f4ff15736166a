package protocol_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"qchat/protocol"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want protocol.Line
		code int // 0: success
	}{
		// replies
		{"reply", "200 ok", protocol.Line{Code: 200, Text: "ok"}, 0},
		{"tagged reply", "@t1 250 sent 42", protocol.Line{Tag: "t1", Code: 250, Text: "sent 42"}, 0},
		{"reply CRLF", "@t1 230 welcome\r", protocol.Line{Tag: "t1", Code: 230, Text: "welcome"}, 0},
		{"reply keeps spaces", "501  usage:  MSG  ", protocol.Line{Code: 501, Text: " usage:  MSG  "}, 0},
		{"continuation", "210-1001 bob online", protocol.Line{Code: 210, More: true, Text: "1001 bob online"}, 0},
		{"tagged continuation", "@x 210-小明 away", protocol.Line{Tag: "x", Code: 210, More: true, Text: "小明 away"}, 0},
		{"empty continuation", "210-", protocol.Line{Code: 210, More: true}, 0},
		{"bare code", "221", protocol.Line{Code: 221}, 0},
		{"code and space", "221 ", protocol.Line{Code: 221}, 0},
		{"lowest code", "100 x", protocol.Line{Code: 100, Text: "x"}, 0},
		{"highest code", "999 x", protocol.Line{Code: 999, Text: "x"}, 0},
		{"reply text may hold ESC", "200 \x1b[2J", protocol.Line{Code: 200, Text: "\x1b[2J"}, 0},

		// events
		{"msg event", "MSG 42 1001 小明 2024-05-01T10:00:00.000Z hello  big world ", protocol.Line{Kind: "MSG", Args: []string{"42", "1001", "小明", "2024-05-01T10:00:00.000Z", "hello  big world "}}, 0},
		{"presence", "PRESENCE 1001 bob online", protocol.Line{Kind: "PRESENCE", Args: []string{"1001", "bob", "online"}}, 0},
		{"presence with status", "PRESENCE 1001 bob away out to  lunch", protocol.Line{Kind: "PRESENCE", Args: []string{"1001", "bob", "away", "out to  lunch"}}, 0},
		{"ping", "PING 7f3a", protocol.Line{Kind: "PING", Args: []string{"7f3a"}}, 0},
		{"bye", "BYE idle", protocol.Line{Kind: "BYE", Args: []string{"idle"}}, 0},
		{"bye with text", "BYE shutdown server going down\r", protocol.Line{Kind: "BYE", Args: []string{"shutdown", "server going down"}}, 0},
		{"unknown kind kept as words", "SHARE 9  bob\tx.txt 1234", protocol.Line{Kind: "SHARE", Args: []string{"9", "bob", "x.txt", "1234"}}, 0},
		{"unknown kind no args", "NEWTHING", protocol.Line{Kind: "NEWTHING"}, 0},

		// malformed
		{"tag on event", "@t1 PING x", protocol.Line{Tag: "t1"}, protocol.CodeSyntax},
		{"tag alone", "@t1", protocol.Line{Tag: "t1"}, protocol.CodeSyntax},
		{"bad tag", "@t!1 200 ok", protocol.Line{}, protocol.CodeSyntax},
		{"empty tag", "@ 200 ok", protocol.Line{}, protocol.CodeSyntax},
		{"lower-case kind", "msg 42 1001 bob t hi", protocol.Line{}, protocol.CodeSyntax},
		{"mixed-case kind", "Ping x", protocol.Line{}, protocol.CodeSyntax},
		{"code below 100", "099 x", protocol.Line{}, protocol.CodeSyntax},
		{"four digits", "2000 x", protocol.Line{}, protocol.CodeSyntax},
		{"code then letter", "200x", protocol.Line{}, protocol.CodeSyntax},
		{"code then tab", "200\tx", protocol.Line{}, protocol.CodeSyntax},
		{"two digits", "20 ok", protocol.Line{}, protocol.CodeSyntax},
		{"empty line", "", protocol.Line{}, protocol.CodeSyntax},
		{"spaces", "   ", protocol.Line{}, protocol.CodeSyntax},
		{"msg event too few args", "MSG 42 1001 bob", protocol.Line{}, protocol.CodeSyntax},
		{"ping without token", "PING", protocol.Line{}, protocol.CodeSyntax},
		{"ping two tokens", "PING a b", protocol.Line{}, protocol.CodeSyntax},
		{"presence control in word", "PRESENCE 1001 b\x1bob online", protocol.Line{}, protocol.CodeSyntax},
		{"NUL", "200 a\x00b", protocol.Line{}, protocol.CodeSyntax},
		{"invalid UTF-8", "200 \xff", protocol.Line{}, protocol.CodeSyntax},
		{"over-long", "200 " + strings.Repeat("x", protocol.MaxLine), protocol.Line{}, protocol.CodeTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseLine([]byte(tt.line))
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("ParseLine(%q) error: %v", tt.line, err)
				}
				if !sameLine(got, tt.want) {
					t.Fatalf("ParseLine(%q) = %#v, want %#v", tt.line, got, tt.want)
				}
				if got.IsEvent() != (tt.want.Kind != "") {
					t.Errorf("IsEvent() = %v", got.IsEvent())
				}
				return
			}
			if c := codeOf(err); c != tt.code {
				t.Fatalf("ParseLine(%q) = %#v, %v; want error code %d", tt.line, got, err, tt.code)
			}
		})
	}
}

func TestLineErr(t *testing.T) {
	for code, fail := range map[int]bool{200: false, 331: false, 399: false, 400: true, 450: true, 501: true, 554: true} {
		err := protocol.Line{Code: code, Text: "why"}.Err()
		if (err != nil) != fail {
			t.Errorf("Line{Code: %d}.Err() = %v", code, err)
			continue
		}
		if fail && codeOf(err) != code {
			t.Errorf("Line{Code: %d}.Err() code %d", code, codeOf(err))
		}
	}
	if (protocol.Line{Kind: "PING"}).Err() != nil {
		t.Error("event has an error")
	}
}

func TestAppendReplyRoundTrip(t *testing.T) {
	tests := []struct {
		tag  string
		code int
		more bool
		text string
	}{
		{"", 200, false, "ok"},
		{"t1", 250, false, "sent 42"},
		{"t1", 210, true, "1001 小明 online"},
		{"", 210, true, ""},
		{"", 220, false, ""},
		{"x", 501, false, "  usage: MSG <id|nick> <text>  "},
		{"", 214, true, "MSG <id|nick> <text>   send a private message"},
	}
	for _, tt := range tests {
		out := protocol.AppendReply([]byte("keep\n"), tt.tag, tt.code, tt.more, tt.text)
		line, ok := strings.CutPrefix(string(out), "keep\n")
		if !ok || !oneLine([]byte(line)) {
			t.Fatalf("AppendReply(%+v) = %q", tt, out)
		}
		got, err := protocol.ParseLine([]byte(strings.TrimSuffix(line, "\n")))
		want := protocol.Line{Tag: tt.tag, Code: tt.code, More: tt.more, Text: tt.text}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %q: %#v, %v; want %#v", line, got, err, want)
		}
	}
}

func TestAppendEventRoundTrip(t *testing.T) {
	ts := protocol.FormatTime(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	tests := []struct {
		kind string
		args []string
	}{
		{"MSG", []string{"42", "1001", "小明", ts, "hello  big world 🙂"}},
		{"MSG", []string{"43", "1002", "bob", ts, "\x1b[31m escaped by the receiver, not here"}},
		{"PRESENCE", []string{"1001", "bob", "online"}},
		{"PRESENCE", []string{"1001", "bob", "away", "in a  meeting"}},
		{"PING", []string{"tok"}},
		{"BYE", []string{"idle"}},
		{"BYE", []string{"shutdown", "server going down"}},
		{"FUTURE", []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		out := protocol.AppendEvent(nil, tt.kind, tt.args...)
		if !oneLine(out) {
			t.Fatalf("AppendEvent(%s, %q) = %q", tt.kind, tt.args, out)
		}
		got, err := protocol.ParseLine(out[:len(out)-1])
		want := protocol.Line{Kind: tt.kind, Args: tt.args}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %q: %#v, %v; want %#v", out, got, err, want)
		}
	}
}

// TestAppendNeverTwoLines feeds hostile text to AppendReply and AppendEvent:
// whatever the text, the result is one line, with CR, LF and NUL replaced.
func TestAppendNeverTwoLines(t *testing.T) {
	hostile := []string{
		"a\nb", "a\rb", "a\r\nb", "\n", "\r", "\x00", "end\n", "\n200 forged",
		"ok\r\n@t1 230 logged in as admin", "\n\n\n", "a\x00\r\n\x00b", "你好\n世界",
	}
	for _, s := range hostile {
		want := strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ").Replace(s)

		out := protocol.AppendReply(nil, "t1", 200, false, s)
		if !oneLine(out) {
			t.Errorf("AppendReply(text %q) = %q: not one line", s, out)
		}
		if l, err := protocol.ParseLine(out[:len(out)-1]); err != nil || l.Text != want || l.Code != 200 || l.Tag != "t1" {
			t.Errorf("AppendReply(text %q) = %q parses to %#v, %v", s, out, l, err)
		}
		out = protocol.AppendReply(nil, "", 210, true, s)
		if !oneLine(out) {
			t.Errorf("AppendReply(more, %q) = %q: not one line", s, out)
		}

		out = protocol.AppendEvent(nil, "MSG", "42", "1001", "bob", "2024-05-01T10:00:00.000Z", s)
		if !oneLine(out) {
			t.Errorf("AppendEvent(MSG text %q) = %q: not one line", s, out)
		}
		for i := range 3 {
			args := []string{"1001", "bob", "away", "fine"}
			args[i] = s
			if out := protocol.AppendEvent(nil, "PRESENCE", args...); !oneLine(out) {
				t.Errorf("AppendEvent(PRESENCE %q) = %q: not one line", args, out)
			}
		}
	}
}

func TestLookupTables(t *testing.T) {
	for _, tab := range [][]protocol.Syntax{protocol.Commands, protocol.Events} {
		seen := map[string]bool{}
		for _, s := range tab {
			if s.Name != strings.ToUpper(s.Name) || s.Name == "" {
				t.Errorf("%q: names are upper case", s.Name)
			}
			if seen[s.Name] {
				t.Errorf("%q twice", s.Name)
			}
			seen[s.Name] = true
			if s.Min < 0 || s.Min > s.Max || (s.Trailing && s.Max == 0) || s.Help == "" {
				t.Errorf("%q: inconsistent syntax %+v", s.Name, s)
			}
		}
	}
	for _, v := range []string{"USER", "PASS", "LIST", "CHAT", "FILE", "REG", "MSG", "INFO", "ACK", "PING", "QUIT"} {
		if protocol.LookupCommand(v) == nil {
			t.Errorf("verb %s missing", v)
		}
	}
	if protocol.LookupCommand("msg") != nil || protocol.LookupEvent("FOO") != nil {
		t.Error("lookup is by upper-case name and known names only")
	}
	if protocol.LookupEvent("MSG") == nil || protocol.LookupEvent("PRESENCE") == nil {
		t.Error("MSG or PRESENCE event missing")
	}
}

func TestTime(t *testing.T) {
	tm := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("CST", 8*3600))
	s := protocol.FormatTime(tm)
	if s != "2024-02-29T15:59:58.123Z" {
		t.Fatalf("FormatTime = %q", s)
	}
	back, err := protocol.ParseTime(s)
	if err != nil || !back.Equal(tm.Truncate(time.Millisecond)) {
		t.Fatalf("ParseTime(%q) = %v, %v", s, back, err)
	}
	if _, err := protocol.ParseTime("2024-02-29T15:59:58+08:00"); err != nil {
		t.Errorf("any RFC 3339 time: %v", err)
	}
	if _, err := protocol.ParseTime("yesterday"); err == nil {
		t.Error("ParseTime accepted garbage")
	}
}

// sameLine compares two Lines, treating nil and empty Args alike.
func sameLine(a, b protocol.Line) bool {
	if len(a.Args) == 0 && len(b.Args) == 0 {
		a.Args, b.Args = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

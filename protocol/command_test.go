package protocol_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"qchat/protocol"
)

func TestParseCommand(t *testing.T) {
	tag32 := strings.Repeat("T", protocol.MaxTag)
	long := strings.Repeat("x", protocol.MaxLine+1)
	tests := []struct {
		name string
		line string
		want protocol.Command // compared also on error (the tag is kept)
		code int              // 0: success
		text string           // substring of the error text
	}{
		// verbs and case
		{"bare verb", "LIST", protocol.Command{Verb: "LIST"}, 0, ""},
		{"lower case verb", "list", protocol.Command{Verb: "LIST"}, 0, ""},
		{"mixed case verb", "mSg 1001 hi", protocol.Command{Verb: "MSG", Args: []string{"1001", "hi"}}, 0, ""},
		{"CRLF", "LIST\r", protocol.Command{Verb: "LIST"}, 0, ""},
		{"CRLF after text", "MSG 1001 hi\r", protocol.Command{Verb: "MSG", Args: []string{"1001", "hi"}}, 0, ""},
		{"leading spaces", "   LIST", protocol.Command{Verb: "LIST"}, 0, ""},
		{"optional arg absent", "PING", protocol.Command{Verb: "PING"}, 0, ""},
		{"optional arg present", "PING tok-1", protocol.Command{Verb: "PING", Args: []string{"tok-1"}}, 0, ""},
		{"quit without reason", "QUIT", protocol.Command{Verb: "QUIT"}, 0, ""},
		{"quit reason keeps spaces", "QUIT gone  for lunch", protocol.Command{Verb: "QUIT", Args: []string{"gone  for lunch"}}, 0, ""},

		// tags
		{"tag", "@t1 LIST", protocol.Command{Tag: "t1", Verb: "LIST"}, 0, ""},
		{"tag charset", "@a.B_c-9 USER bob", protocol.Command{Tag: "a.B_c-9", Verb: "USER", Args: []string{"bob"}}, 0, ""},
		{"tag of max length", "@" + tag32 + " LIST", protocol.Command{Tag: tag32, Verb: "LIST"}, 0, ""},
		{"spaces around tag", "  @t1    list", protocol.Command{Tag: "t1", Verb: "LIST"}, 0, ""},
		{"empty tag", "@ LIST", protocol.Command{}, protocol.CodeSyntax, "bad tag"},
		{"tag too long", "@" + tag32 + "X LIST", protocol.Command{}, protocol.CodeSyntax, "bad tag"},
		{"tag bad char", "@t!1 LIST", protocol.Command{}, protocol.CodeSyntax, "bad tag"},
		{"tag non-ASCII", "@标签 LIST", protocol.Command{}, protocol.CodeSyntax, "bad tag"},
		{"tag with control", "@t\x1b1 LIST", protocol.Command{}, protocol.CodeSyntax, "bad tag"},
		{"tag without verb", "@t1", protocol.Command{Tag: "t1"}, protocol.CodeSyntax, "tag without a verb"},
		{"tag then spaces", "@t1   \r", protocol.Command{Tag: "t1"}, protocol.CodeSyntax, "tag without a verb"},

		// trailing arguments
		{"msg text keeps inner spaces", "MSG 1001 hello   big  world", protocol.Command{Verb: "MSG", Args: []string{"1001", "hello   big  world"}}, 0, ""},
		{"msg text keeps trailing spaces", "MSG 1001 hi  ", protocol.Command{Verb: "MSG", Args: []string{"1001", "hi  "}}, 0, ""},
		{"msg leading spaces dropped", "MSG   1001    hi", protocol.Command{Verb: "MSG", Args: []string{"1001", "hi"}}, 0, ""},
		{"msg Chinese and emoji", "@q MSG 小明 你好 🙂", protocol.Command{Tag: "q", Verb: "MSG", Args: []string{"小明", "你好 🙂"}}, 0, ""},
		{"msg text may hold ESC", "MSG 1001 \x1b[31mred", protocol.Command{Verb: "MSG", Args: []string{"1001", "\x1b[31mred"}}, 0, ""},
		{"reg password with spaces", "REG 小明 my secret pw", protocol.Command{Verb: "REG", Args: []string{"小明", "my secret pw"}}, 0, ""},
		{"file name with spaces", "FILE bob 1 2048 my photo.jpg", protocol.Command{Verb: "FILE", Args: []string{"bob", "1", "2048", "my photo.jpg"}}, 0, ""},
		{"file offer too short", "FILE bob photo.jpg", protocol.Command{}, protocol.CodeSyntax, ""},
		{"relay", "RELAY abcdef s3cret", protocol.Command{Verb: "RELAY", Args: []string{"abcdef", "s3cret"}}, 0, ""},
		{"relay without its secret", "RELAY abcdef", protocol.Command{}, protocol.CodeSyntax, "<secret>"},
		{"link key", "LINKKEY SHA256:K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA", protocol.Command{Verb: "LINKKEY", Args: []string{"SHA256:K9gGyX8OAK8aH8Myj6djqSaXI8jbj6xPk69x2xhtbpA"}}, 0, ""},

		// blank lines
		{"empty", "", protocol.Command{}, -1, ""},
		{"spaces only", "    ", protocol.Command{}, -1, ""},
		{"CR only", "\r", protocol.Command{}, -1, ""},
		{"spaces and CR", "  \r\r", protocol.Command{}, -1, ""},

		// unknown verbs
		{"unknown verb", "FOO", protocol.Command{}, protocol.CodeUnknown, "FOO"},
		{"unknown verb with tag", "@t9 foo bar", protocol.Command{Tag: "t9"}, protocol.CodeUnknown, "FOO"},
		{"verb with digit", "MSG1 1001 hi", protocol.Command{}, protocol.CodeUnknown, ""},
		{"verb with punctuation", "LIST!", protocol.Command{}, protocol.CodeUnknown, ""},
		{"verb non-ASCII", "名单", protocol.Command{}, protocol.CodeUnknown, ""},
		{"verb too long", strings.Repeat("A", 17), protocol.Command{}, protocol.CodeUnknown, ""},
		{"tab is not a separator", "USER\tbob", protocol.Command{}, protocol.CodeUnknown, ""},

		// arity
		{"msg without text", "@t2 MSG 1001", protocol.Command{Tag: "t2", Verb: "MSG"}, protocol.CodeSyntax, "usage: MSG [id=<cid>|resend=<cid>] <id|nick|#group> <text>"},
		{"msg without args", "MSG", protocol.Command{Verb: "MSG"}, protocol.CodeSyntax, "usage: MSG [id=<cid>|resend=<cid>] <id|nick|#group> <text>"},
		{"list with two args", "LIST 1 2", protocol.Command{Verb: "LIST"}, protocol.CodeSyntax, "usage: LIST [<version>]"},
		{"user with two args", "USER bob alice", protocol.Command{Verb: "USER"}, protocol.CodeSyntax, "usage: USER <id|nick>"},
		{"user without arg", "USER", protocol.Command{Verb: "USER"}, protocol.CodeSyntax, "usage: USER <id|nick>"},
		{"ping with two args", "PING a b", protocol.Command{Verb: "PING"}, protocol.CodeSyntax, "usage: PING [token]"},
		{"reg with one arg", "REG bob", protocol.Command{Verb: "REG"}, protocol.CodeSyntax, "usage: REG <nick> <password>"},

		// control characters, NUL, UTF-8
		{"control in word arg", "USER b\x01ob", protocol.Command{Verb: "USER"}, protocol.CodeSyntax, "control character"},
		{"tab in word arg", "INFO bo\tb", protocol.Command{Verb: "INFO"}, protocol.CodeSyntax, "control character"},
		{"DEL in word arg", "MSG bo\x7fb hi", protocol.Command{Verb: "MSG"}, protocol.CodeSyntax, "control character"},
		{"ESC in word arg", "@t7 CHAT \x1b[2J", protocol.Command{Tag: "t7", Verb: "CHAT"}, protocol.CodeSyntax, "control character"},
		{"NUL in text", "@t3 MSG 1001 a\x00b", protocol.Command{Tag: "t3"}, protocol.CodeSyntax, "NUL"},
		{"NUL in verb", "LI\x00ST", protocol.Command{}, protocol.CodeSyntax, "NUL"},
		{"invalid UTF-8 in text", "@t4 MSG 1001 \xff\xfe", protocol.Command{Tag: "t4"}, protocol.CodeSyntax, "UTF-8"},
		{"truncated UTF-8", "MSG 1001 \xe5\xb0", protocol.Command{}, protocol.CodeSyntax, "UTF-8"},
		{"overlong UTF-8", "MSG 1001 \xc0\xaf", protocol.Command{}, protocol.CodeSyntax, "UTF-8"},
		{"surrogate half", "MSG 1001 \xed\xa0\x80", protocol.Command{}, protocol.CodeSyntax, "UTF-8"},

		// length
		{"over-long line", long, protocol.Command{}, protocol.CodeTooLong, "too long"},
		{"over-long msg", "MSG 1001 " + long[:protocol.MaxLine-8], protocol.Command{}, protocol.CodeTooLong, "too long"},
		{"long but under the limit", "MSG 1001 " + long[:protocol.MaxLine-10], protocol.Command{Verb: "MSG", Args: []string{"1001", long[:protocol.MaxLine-10]}}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseCommand([]byte(tt.line))
			switch {
			case tt.code == -1:
				if !errors.Is(err, protocol.ErrEmptyLine) {
					t.Fatalf("ParseCommand(%q) error = %v, want ErrEmptyLine", tt.line, err)
				}
			case tt.code == 0:
				if err != nil {
					t.Fatalf("ParseCommand(%q) error = %v", tt.line, err)
				}
			default:
				var pe *protocol.Error
				if !errors.As(err, &pe) {
					t.Fatalf("ParseCommand(%q) error = %v (%T), want *protocol.Error %d", tt.line, err, err, tt.code)
				}
				if pe.Code != tt.code || !strings.Contains(pe.Text, tt.text) {
					t.Fatalf("ParseCommand(%q) error = %d %q, want %d containing %q", tt.line, pe.Code, pe.Text, tt.code, tt.text)
				}
				if tt.code == protocol.CodeSyntax || tt.code == protocol.CodeUnknown {
					if pe.Temporary() {
						t.Errorf("%d reported as temporary", pe.Code)
					}
				}
			}
			// Tag and verb are compared even on failure: the reply must
			// echo the tag. Args are only meaningful on success.
			if got.Tag != tt.want.Tag {
				t.Errorf("ParseCommand(%q).Tag = %q, want %q", tt.line, got.Tag, tt.want.Tag)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCommand(%q) = %#v, want %#v", tt.line, got, tt.want)
			}
		})
	}
}

// TestParseCommandDoesNotAlias checks that the returned strings do not share
// memory with the line buffer, which a LineReader reuses on the next read.
func TestParseCommandDoesNotAlias(t *testing.T) {
	line := []byte("@t1 MSG 1001 hello world")
	c, err := protocol.ParseCommand(line)
	if err != nil {
		t.Fatal(err)
	}
	for i := range line {
		line[i] = 'Z'
	}
	want := protocol.Command{Tag: "t1", Verb: "MSG", Args: []string{"1001", "hello world"}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("after overwriting the buffer: %#v, want %#v", c, want)
	}
}

// argsFor builds n valid arguments for syn; a trailing last one holds spaces.
func argsFor(syn protocol.Syntax, n int) []string {
	args := make([]string, n)
	for i := range args {
		args[i] = "arg" + string(rune('a'+i))
		if i == 0 {
			args[i] = "小明"
		}
	}
	if syn.Trailing && n == syn.Max && n > 0 {
		args[n-1] = "hello  big\tworld 🙂 \x1b[0m "
	}
	return args
}

func TestAppendCommandRoundTrip(t *testing.T) {
	if len(protocol.Commands) == 0 {
		t.Fatal("empty command table")
	}
	for _, syn := range protocol.Commands {
		if protocol.LookupCommand(syn.Name) == nil {
			t.Errorf("LookupCommand(%q) = nil", syn.Name)
		}
		for n := syn.Min; n <= syn.Max; n++ {
			for _, tag := range []string{"", "t-1", strings.Repeat("z", protocol.MaxTag)} {
				args := argsFor(syn, n)
				out, err := protocol.AppendCommand([]byte("prefix\n"), tag, syn.Name, args...)
				if err != nil {
					t.Errorf("AppendCommand(%q, %q, %q) error: %v", tag, syn.Name, args, err)
					continue
				}
				line, ok := strings.CutPrefix(string(out), "prefix\n")
				if !ok {
					t.Fatalf("AppendCommand did not append to dst: %q", line)
				}
				if !oneLine([]byte(line)) {
					t.Errorf("AppendCommand(%q, %q) = %q: not exactly one line", syn.Name, args, line)
				}
				got, err := protocol.ParseCommand([]byte(strings.TrimSuffix(line, "\n")))
				if err != nil {
					t.Errorf("ParseCommand(%q) error: %v", line, err)
					continue
				}
				want := protocol.Command{Tag: tag, Verb: syn.Name, Args: args}
				if n == 0 {
					want.Args = nil
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("round trip of %q: %#v, want %#v", line, got, want)
				}
			}
		}
	}
}

func TestAppendCommandRefuses(t *testing.T) {
	hostileWord := []string{"", "a b", " a", "a ", "a\nb", "a\rb", "a\x00b", "\n", "\r\n", "a\tb", "\x1b[2J", "\x7f", "\xff"}
	hostileText := []string{"", " leading", "a\nb", "a\rb", "a\x00b", "\n", "end\r", "end\n", "\r\nQUIT", "\xff\xfe"}
	for _, syn := range protocol.Commands {
		for n := max(syn.Min, 1); n <= syn.Max; n++ {
			for pos := range n {
				trailing := syn.Trailing && pos == syn.Max-1
				bad := hostileWord
				if trailing {
					bad = hostileText
				}
				for _, b := range bad {
					args := argsFor(syn, n)
					args[pos] = b
					out, err := protocol.AppendCommand([]byte("keep"), "t1", syn.Name, args...)
					if err == nil {
						t.Errorf("AppendCommand(%s, %q) = %q, want an error", syn.Name, args, out)
						continue
					}
					if codeOf(err) != protocol.CodeSyntax {
						t.Errorf("AppendCommand(%s, %q) error %v, want code %d", syn.Name, args, err, protocol.CodeSyntax)
					}
					if string(out) != "keep" {
						t.Errorf("AppendCommand(%s, %q) changed dst on error: %q", syn.Name, args, out)
					}
				}
			}
		}
	}

	// arity
	for _, syn := range protocol.Commands {
		for _, n := range []int{syn.Min - 1, syn.Max + 1} {
			if n < 0 {
				continue
			}
			args := argsFor(syn, n)
			if _, err := protocol.AppendCommand(nil, "", syn.Name, args...); codeOf(err) != protocol.CodeSyntax {
				t.Errorf("AppendCommand(%s) with %d args: error %v, want %d", syn.Name, n, err, protocol.CodeSyntax)
			}
		}
	}

	// tags
	for _, tag := range []string{"a b", "t\n", "t\r", "t\x00", "@t", "标签", strings.Repeat("x", protocol.MaxTag+1), "\nLIST"} {
		if out, err := protocol.AppendCommand(nil, tag, "LIST"); err == nil {
			t.Errorf("AppendCommand with tag %q = %q, want an error", tag, out)
		}
	}

	// verbs: the table's spelling only
	for _, verb := range []string{"list", "FOO", "", "LIST\n", "LIST LIST"} {
		if out, err := protocol.AppendCommand(nil, "", verb); codeOf(err) != protocol.CodeUnknown {
			t.Errorf("AppendCommand(verb %q) = %q, %v; want code %d", verb, out, err, protocol.CodeUnknown)
		}
	}
}

// TestAppendCommandOneLine tries every combination of hostile pieces: an
// AppendCommand that succeeds always writes exactly one line, which parses
// back to what was given.
func TestAppendCommandOneLine(t *testing.T) {
	pieces := []string{"bob", "a b", "x\ny", "x\r", "\r\n", "\x00", "LIST\nQUIT", " t", "你好", "\x1b]0;pwned\x07", "\xc0\x80", "\u2028", "\u0085"}
	for _, syn := range protocol.Commands {
		n := syn.Max
		if n == 0 {
			continue
		}
		idx := make([]int, n)
		for {
			args := make([]string, n)
			for i, j := range idx {
				args[i] = pieces[j]
			}
			out, err := protocol.AppendCommand(nil, "t", syn.Name, args...)
			if err == nil {
				if !oneLine(out) {
					t.Fatalf("AppendCommand(%s, %q) = %q: not one line", syn.Name, args, out)
				}
				c, err := protocol.ParseCommand(out[:len(out)-1])
				if err != nil || !reflect.DeepEqual(c.Args, args) {
					t.Fatalf("AppendCommand(%s, %q) = %q parses back to %q, %v", syn.Name, args, out, c.Args, err)
				}
			}
			// next combination
			i := 0
			for ; i < n; i++ {
				idx[i]++
				if idx[i] < len(pieces) {
					break
				}
				idx[i] = 0
			}
			if i == n {
				break
			}
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, s := range []string{"a", "Z", "0", "a.b", "a_b", "a-b", strings.Repeat("9", protocol.MaxTag)} {
		if !protocol.ValidTag(s) {
			t.Errorf("ValidTag(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a@b", "a/b", "é", strings.Repeat("9", protocol.MaxTag+1), "a\n"} {
		if protocol.ValidTag(s) {
			t.Errorf("ValidTag(%q) = true", s)
		}
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		code int
	}{
		{"hello world", 100, 0},
		{"你好 🙂", 100, 0},
		{"\x1b[31m tabs\tand ESC pass", 100, 0}, // receivers escape them
		{"", 100, protocol.CodeSyntax},
		{"a\nb", 100, protocol.CodeSyntax},
		{"a\rb", 100, protocol.CodeSyntax},
		{"a\x00b", 100, protocol.CodeSyntax},
		{"\xff", 100, protocol.CodeSyntax},
		{"12345", 5, 0},
		{"123456", 5, protocol.CodeTooLong},
		{"你好", 5, protocol.CodeTooLong}, // bytes, not runes
		{strings.Repeat("x", protocol.MaxText), protocol.MaxText, 0},
		{strings.Repeat("x", protocol.MaxText+1), protocol.MaxText, protocol.CodeTooLong},
	}
	for _, tt := range tests {
		if got := codeOf(protocol.CheckText(tt.s, tt.max)); got != tt.code {
			t.Errorf("CheckText(%q, %d) code %d, want %d", tt.s, tt.max, got, tt.code)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 4, "hell…"},
		{"hello", 0, "…"},
		{"", 0, ""},
		{"你好世界", 6, "你好…"},
		{"你好世界", 5, "你…"}, // never cuts a rune in half
		{"你好世界", 4, "你…"},
		{"你好世界", 2, "…"},
		{"a🙂b", 4, "a…"},
	}
	for _, tt := range tests {
		if got := protocol.Clip(tt.s, tt.n); got != tt.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestErrorType(t *testing.T) {
	e := protocol.Errorf(protocol.CodeQueueFull, "queue of %s is full", "bob")
	if e.Error() != "450 queue of bob is full" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !e.Temporary() {
		t.Error("450 not temporary")
	}
	if protocol.Errorf(protocol.CodeSyntax, "x").Temporary() || protocol.Errorf(protocol.CodeOK, "x").Temporary() {
		t.Error("501 or 200 temporary")
	}
	var wrapped error = errors.Join(errors.New("context"), e)
	if codeOf(wrapped) != protocol.CodeQueueFull {
		t.Errorf("errors.As through a wrapper: code %d", codeOf(wrapped))
	}
}

// TestParseCommandClientID covers MSG's client id: id=<cid> for a first
// try, resend=<cid> for a message sent again after a lost connection.
func TestParseCommandClientID(t *testing.T) {
	for _, tc := range []struct {
		line   string
		cid    string
		resend bool
		args   []string
		code   int // 0: accepted
	}{
		{line: "MSG id=k7f3q.1a bob hi there", cid: "k7f3q.1a", args: []string{"bob", "hi there"}},
		{line: "@t1 msg resend=k7f3q.1a #team hi", cid: "k7f3q.1a", resend: true, args: []string{"#team", "hi"}},
		{line: "MSG bob id=x is the text", args: []string{"bob", "id=x is the text"}},
		{line: "MSG   id=x    1001   a", cid: "x", args: []string{"1001", "a"}},
		{line: "MSG id= bob x", code: protocol.CodeSyntax},
		{line: "MSG id=a=b bob x", code: protocol.CodeSyntax},
		{line: "MSG id=" + strings.Repeat("x", protocol.MaxTag+1) + " bob x", code: protocol.CodeSyntax},
		{line: "MSG label=x bob x", code: protocol.CodeSyntax},
		{line: "MSG id=x bob", code: protocol.CodeSyntax},
		{line: "MSG id=x", code: protocol.CodeSyntax},
		// Only verbs that take a client id read one.
		{line: "INFO id=x", args: []string{"id=x"}},
	} {
		c, err := protocol.ParseCommand([]byte(tc.line))
		if tc.code != 0 {
			if codeOf(err) != tc.code || c.ClientID != "" || c.Args != nil {
				t.Errorf("ParseCommand(%q) = %#v, %v; want code %d and nothing kept", tc.line, c, err, tc.code)
			}
			continue
		}
		if err != nil || c.ClientID != tc.cid || c.Resend != tc.resend || !reflect.DeepEqual(c.Args, tc.args) {
			t.Errorf("ParseCommand(%q) = %#v, %v; want id %q resend %v args %q", tc.line, c, err, tc.cid, tc.resend, tc.args)
			continue
		}
		out, err := protocol.AppendCommandID(nil, c.Tag, c.Verb, c.ClientID, c.Resend, c.Args...)
		if err != nil {
			t.Errorf("AppendCommandID(%#v): %v", c, err)
			continue
		}
		if back, err := protocol.ParseCommand(out[:len(out)-1]); err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("round trip of %q: %q parses to %#v, %v", tc.line, out, back, err)
		}
	}
	// The encoder never writes what would be read back as an option, nor a
	// client id where the verb takes none.
	if out, err := protocol.AppendCommand(nil, "", "MSG", "id=x", "hi"); err == nil {
		t.Errorf("AppendCommand(MSG id=x hi) = %q, want an error", out)
	}
	if out, err := protocol.AppendCommandID(nil, "", "LIST", "x", false); err == nil {
		t.Errorf("AppendCommandID(LIST, id x) = %q, want an error", out)
	}
	if out, err := protocol.AppendCommandID(nil, "", "MSG", "a b", false, "bob", "hi"); err == nil {
		t.Errorf("AppendCommandID(MSG, id %q) = %q, want an error", "a b", out)
	}
}

package chat

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSplitPaths(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"a.txt", []string{"a.txt"}},
		{"a.txt b.txt", []string{"a.txt", "b.txt"}},
		{"  a.txt   b.txt  ", []string{"a.txt", "b.txt"}},
		{`"my file.txt"`, []string{"my file.txt"}},
		{`'my file.txt'`, []string{"my file.txt"}},
		{`"my file.txt" other 'third one'`, []string{"my file.txt", "other", "third one"}},
		{`"Bob's file.txt"`, []string{"Bob's file.txt"}},
		{`'say "hi".txt'`, []string{`say "hi".txt`}},
		{`dir/"with space"/f.txt`, []string{"dir/with space/f.txt"}},
		{`"a b"c d`, []string{"a bc", "d"}},
		{`"unterminated quote`, []string{"unterminated quote"}},
		{`""`, []string{""}}, // an empty quoted path stays a path (and fails as one)
		{"tab\tstays", []string{"tab\tstays"}},
		{"你好 文件.txt", []string{"你好", "文件.txt"}},
		{`"你好 文件.txt"`, []string{"你好 文件.txt"}},
		{`back\ slash`, []string{`back\`, "slash"}}, // no backslash escapes: quote instead
	} {
		if got := splitPaths(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitPaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAfterWords(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"file 1001 bob tkt 3 1024 my photos/", 6, "my photos/"},
		{"file 1001 bob tkt 1 5 two  spaces ", 6, "two  spaces "},
		{"file 1001 bob tkt 2 10 2 files", 6, "2 files"},
		{"a b c", 0, "a b c"},
		{"a b c", 1, "b c"},
		{"a b c", 3, ""},
		{"a b c", 10, ""},
		{"", 2, ""},
	} {
		if got := afterWords(tc.s, tc.n); got != tc.want {
			t.Errorf("afterWords(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		cmd, rest string
		want      []string
	}{
		{"/msg", "bob hello  world ", []string{"bob", "hello  world "}},
		{"/msg", "   bob    hi", []string{"bob", "hi"}},
		{"/msg", "bob", []string{"bob"}},
		{"/msg", "", nil},
		{"/msg", "#dev   x", []string{"#dev", "x"}},
		{"/send", `bob "my file.txt" b.txt`, []string{"bob", `"my file.txt" b.txt`}},
		{"/history", "bob 5", []string{"bob", "5"}},
		{"/history", "bob  5  extra", []string{"bob", "5", "extra"}},
		{"/history", "", nil},
		{"/profile", "set status at work  today", []string{"set", "status", "at work  today"}},
		{"/profile", "set nick", []string{"set", "nick"}},
		{"/away", "  back in 5", []string{"back in 5"}},
		{"/find", "bo b", []string{"bo b"}},
		{"/wait", "^\\* bob .* online$", []string{"^\\* bob .* online$"}},
		{"/accept", "1001 file", []string{"1001", "file"}},
		{"/list", "x y", []string{"x", "y"}},
	} {
		c := lookupCommand(tc.cmd)
		if c == nil {
			t.Fatalf("no command %s", tc.cmd)
		}
		if got := splitArgs(tc.rest, c); !slices.Equal(got, tc.want) {
			t.Errorf("%s: splitArgs(%q) = %q, want %q", tc.cmd, tc.rest, got, tc.want)
		}
	}
}

func TestCommandTable(t *testing.T) {
	seen := make(map[string]bool)
	for _, c := range commands {
		switch {
		case !regexp.MustCompile(`^/[a-z]+$`).MatchString(c.name):
			t.Errorf("command %q: a name is / and lower-case letters", c.name)
		case seen[c.name]:
			t.Errorf("command %s twice", c.name)
		case c.run == nil:
			t.Errorf("command %s has no run func", c.name)
		case c.help == "":
			t.Errorf("command %s has no help", c.name)
		case c.min < 0 || c.min > c.max:
			t.Errorf("command %s: min %d, max %d", c.name, c.min, c.max)
		case c.rest && c.max == 0:
			t.Errorf("command %s: free text but no argument", c.name)
		case c.userArg < 0 || c.userArg > c.max:
			t.Errorf("command %s: user argument %d of %d", c.name, c.userArg, c.max)
		case (c.max > 0) != (c.args != ""):
			t.Errorf("command %s: synopsis %q for %d arguments", c.name, c.args, c.max)
		}
		seen[c.name] = true
		if lookupCommand(c.name) != c {
			t.Errorf("lookupCommand(%q) does not find it", c.name)
		}
	}
	for _, name := range []string{"/register", "/login", "/msg", "/send", "/accept", "/help", "/quit"} {
		if !seen[name] {
			t.Errorf("no %s", name)
		}
	}
	for _, name := range []string{"", "/", "msg", "/MSG", "/nope", "//msg"} {
		if lookupCommand(name) != nil {
			t.Errorf("lookupCommand(%q) found a command", name)
		}
	}
}

// The README's table of commands and the command table list the same.
func TestCommandsMatchREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip("no README:", err)
	}
	readme := string(b)
	i := strings.Index(readme, "### Commands")
	j := strings.Index(readme, "### Piped mode")
	if i < 0 || j < i {
		t.Fatal("README has no Commands section")
	}
	documented := make(map[string]bool)
	for _, m := range regexp.MustCompile("(?m)^\\| `(/[a-z]+)[^`]*`(?:, `(/[a-z]+)[^`]*`)?").FindAllStringSubmatch(readme[i:j], -1) {
		for _, name := range m[1:] {
			if name != "" {
				documented[name] = true
			}
		}
	}
	for _, c := range commands {
		if !documented[c.name] {
			t.Errorf("%s is not in the README's table", c.name)
		}
		delete(documented, c.name)
	}
	for name := range documented {
		t.Errorf("the README lists %s, which chat does not have", name)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	a, out, _ := newTestApp(t, false)
	if err := a.exec(context.Background(), "/help"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for _, c := range commands {
		syn := strings.TrimSpace(c.name + " " + c.args)
		found := false
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), syn+" ") && strings.Contains(l, c.help) {
				found = true
			}
		}
		if !found {
			t.Errorf("/help does not list %q", syn)
		}
	}

	a, out, _ = newTestApp(t, true)
	if err := a.exec(context.Background(), "/help"); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Type     string     `json:"type"`
		Commands [][]string `json:"commands"`
	}
	if err := json.Unmarshal([]byte(out.String()), &rec); err != nil || rec.Type != "help" || len(rec.Commands) != len(commands) {
		t.Fatalf("JSON /help %q: %+v, %v", out.String(), rec, err)
	}
	for i, c := range commands {
		if rec.Commands[i][0] != strings.TrimSpace(c.name+" "+c.args) || rec.Commands[i][1] != c.help {
			t.Errorf("JSON /help entry %d = %q for %s", i, rec.Commands[i], c.name)
		}
	}
}

func TestCommandName(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"/msg bob hi", "/msg"},
		{"  /list", "/list"},
		{"/nope x y", "/nope"},
		{"hello there", "/msg"},
		{"  hello", "/msg"},
		{"", "/msg"},
		{"/", "/"},
	} {
		if got := commandName(tc.line); got != tc.want {
			t.Errorf("commandName(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// A line starting with "//" is text for the current conversation (exec
// sends "//x" as the message "/x"): its failure is reported as /msg's, not
// under the first word of the message.
func TestCommandNameDoubleSlash(t *testing.T) {
	if got := commandName("//etc/passwd is a path"); got != "/msg" {
		t.Errorf("commandName(%q) = %q, want /msg", "//etc/passwd is a path", got)
	}
}

// What exec refuses before it needs a server.
func TestExecRefusesWithoutServer(t *testing.T) {
	for _, tc := range []struct {
		line  string
		usage bool   // an errUsage
		want  string // in the error text
	}{
		{"/nope", false, "unknown command /nope"},
		{"/" + strings.Repeat("x", 100), false, "unknown command"},
		{"/msg", true, "usage: /msg ID TEXT"},
		{"/msg bob", true, "usage: /msg ID TEXT"},
		{"/login", true, "usage: /login ID"},
		{"/login a b", true, "usage: /login ID"},
		{"/register", true, "usage: /register NICK"},
		{"/history a 5 extra", true, "usage: /history"},
		{"/accept", true, "usage: /accept"},
		{"/accept 1001 file extra", true, "usage: /accept"},
		{"/list now", true, "usage: /list"},
		{"/send bob", true, "usage: /send ID PATH..."},
		{"/help me", true, "usage: /help"},
		{"hello", false, "no current conversation"},
		{"//not a command", false, "no current conversation"},
		{"   ", false, "no current conversation"},
	} {
		a, _, _ := newTestApp(t, false)
		err := a.exec(context.Background(), tc.line)
		if err == nil {
			t.Errorf("exec(%q) worked", tc.line)
			continue
		}
		var u errUsage
		if errors.As(err, &u) != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("exec(%q) = %q (usage %v), want %q (usage %v)", tc.line, err, errors.As(err, &u), tc.want, tc.usage)
		}
		if len(err.Error()) > 200 {
			t.Errorf("exec(%q): error of %d bytes", tc.line, len(err.Error()))
		}
	}
	a, _, _ := newTestApp(t, false)
	if err := a.exec(context.Background(), "/QUIT"); err != nil || !a.quit {
		t.Errorf("/QUIT: %v, quit %v", err, a.quit)
	}
}

func TestKnownID(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.remember(1001, "bob")
	a.remember(1002, "小明")
	a.remember(1003, "Élodie")
	for _, tc := range []struct {
		who string
		id  int64
		ok  bool
	}{
		{"1001", 1001, true},
		{"4242", 4242, true}, // any id, known or not
		{"bob", 1001, true},
		{"BOB", 1001, true},
		{"Bob", 1001, true},
		{"小明", 1002, true},
		{"élodie", 1003, true},
		{"ÉLODIE", 1003, true},
		{"carol", 0, false},
		{"bo", 0, false},
		{"", 0, false},
		{"0", 0, false},
		{"-1001", 0, false},
		{"+1001", 0, false},
		{"#dev", 0, false},
	} {
		id, ok := a.knownID(tc.who)
		if id != tc.id || ok != tc.ok {
			t.Errorf("knownID(%q) = %d, %v; want %d, %v", tc.who, id, ok, tc.id, tc.ok)
		}
	}
}

// resolve answers ids and known nicknames without the server (the app has
// no connection here: asking would crash).
func TestResolveWithoutServer(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.remember(1001, "bob")
	for who, want := range map[string]int64{"1001": 1001, "9999": 9999, "BoB": 1001} {
		id, err := a.resolve(context.Background(), who)
		if err != nil || id != want {
			t.Errorf("resolve(%q) = %d, %v; want %d", who, id, err, want)
		}
	}
}

func TestResolveAsksServer(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	sc := connect(t, a)
	for _, tc := range []struct {
		who   string
		reply []string
		id    int64
		err   string
	}{
		{"carol", []string{"211-id 1003", "211-nick carol", "211 end"}, 1003, ""},
		{"nobody", []string{"550 no such user nobody"}, 0, "no such user"},
		{"odd", []string{"211-nick odd", "211 end"}, 0, "no such user odd"},
		{"odd2", []string{"211-id bob", "211 end"}, 0, "no such user odd2"},
	} {
		done := async(func() error {
			id, err := a.resolve(context.Background(), tc.who)
			if id != tc.id {
				t.Errorf("resolve(%q) = %d, want %d", tc.who, id, tc.id)
			}
			return err
		})
		cmd := sc.expect(t, "INFO")
		if !slices.Equal(cmd.Args, []string{tc.who}) {
			t.Errorf("INFO %q, want %q", cmd.Args, tc.who)
		}
		sc.reply(t, cmd.Tag, tc.reply...)
		err := await(t, done)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("resolve(%q): error %v, want %q", tc.who, err, tc.err)
		}
	}
	// Found once, carol is known: no second INFO.
	if id, err := a.resolve(context.Background(), "carol"); err != nil || id != 1003 {
		t.Errorf("resolve(carol) again = %d, %v", id, err)
	}
}

func TestPrompt(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	if got := a.prompt(); got != "qchat> " {
		t.Errorf("logged out: %q", got)
	}
	a.me.ID, a.me.Nick = 1000, "alice"
	if got := a.prompt(); got != "alice> " {
		t.Errorf("logged in: %q", got)
	}
	a.cur = "1001"
	if got := a.prompt(); got != "alice → 1001> " {
		t.Errorf("unknown peer: %q", got)
	}
	a.remember(1001, "bob\x1b[31m\u202e")
	if got := a.prompt(); got != `alice → bob\x1b[31m\u202e> ` {
		t.Errorf("hostile peer nickname: %q", got)
	}
	a.cur = "#dev"
	if got := a.prompt(); got != "alice → #dev> " {
		t.Errorf("group: %q", got)
	}
}

func TestComplete(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.remember(1001, "bob")
	a.remember(1002, "Bobby")
	a.remember(1003, "evil\x1b[31m")
	for _, tc := range []struct {
		line       string
		head, tail string
		want       []string
	}{
		{"/ms", "", "", []string{"/msg "}},
		{"/", "", "", nil}, // every command: checked below
		{"/MS", "", "", []string{"/msg "}},
		{"/re", "", "", []string{"/register ", "/reject ", "/remove "}},
		{"/msg b", "/msg ", "", []string{"Bobby ", "bob "}},
		{"/msg 100", "/msg ", "", []string{"1001 ", "1002 ", "1003 "}},
		{"/msg bob hel", "/msg bob ", "", nil}, // the text is not completed
		{"/list b", "/list ", "", nil},         // no user argument
		{"/invite dev b", "/invite dev ", "", []string{"Bobby ", "bob "}},
		{"/msg e", "/msg ", "", nil}, // a nickname that is not safe to type is not offered
		{"/nope b", "/nope ", "", nil},
	} {
		head, got, tail := a.complete(tc.line, len(tc.line))
		if tc.line == "/" {
			if len(got) != len(commands) {
				t.Errorf("complete(%q): %d completions, want every command (%d)", tc.line, len(got), len(commands))
			}
			continue
		}
		if head != tc.head || tail != tc.tail || !slices.Equal(got, tc.want) {
			t.Errorf("complete(%q) = %q, %q, %q; want %q, %q, %q", tc.line, head, got, tail, tc.head, tc.want, tc.tail)
		}
	}
	// In the middle of a line, what follows the cursor stays.
	head, got, tail := a.complete("/ms bob", 3)
	if head != "" || !slices.Equal(got, []string{"/msg "}) || tail != " bob" {
		t.Errorf("complete in the middle = %q, %q, %q", head, got, tail)
	}
}

func TestPctEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      "plain",
		"with space": "with%20space",
		"100%":       "100%25",
		"%20":        "%2520",
		"a b%c":      "a%20b%25c",
	} {
		if got := pctEscape(in); got != want {
			t.Errorf("pctEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

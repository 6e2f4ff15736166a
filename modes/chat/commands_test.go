package chat

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"qchat/modes/internal/fakeserver"
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
		case len(c.complete) > c.max:
			t.Errorf("command %s: %d arguments to complete of %d", c.name, len(c.complete), c.max)
		case c.alias != "" && !regexp.MustCompile(`^/[a-z]+$`).MatchString(c.alias):
			t.Errorf("command %s: alias %q", c.name, c.alias)
		case c.example == "" || !strings.HasPrefix(c.example, c.name):
			t.Errorf("command %s: example %q", c.name, c.example)
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
		for _, name := range []string{c.name, c.alias} {
			if name == "" {
				continue
			}
			if !documented[name] {
				t.Errorf("%s is not in the README's table", name)
			}
			delete(documented, name)
		}
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
	got := out.String()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	for _, c := range commands {
		syn := synopsis(c)
		found := false
		for i, l := range lines {
			// The first words of the help on the line, or on the next
			// when the synopsis is too wide for the column.
			if strings.TrimSpace(l) == syn && i+1 < len(lines) {
				l = lines[i+1]
			} else if !strings.HasPrefix(strings.TrimSpace(l), syn+" ") {
				continue
			}
			words := strings.Fields(c.help)
			if strings.Contains(l, strings.Join(words[:min(3, len(words))], " ")) {
				found = true
			}
		}
		if !found {
			t.Errorf("/help does not list %q with its help", syn)
		}
	}
	for _, k := range []string{"Tab", "Up, Down", "Ctrl-R", "Ctrl-D", "Alt-A"} {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(k) + `  `).MatchString(got) {
			t.Errorf("/help has no line for the key %s", k)
		}
	}
	// Two columns: the help of every command starts in the same column.
	col := -1
	for _, l := range lines {
		if m := regexp.MustCompile(`^  (/\S+.*?)  +(\S)`).FindStringSubmatchIndex(l); m != nil && strings.HasPrefix(l, "  /") {
			if c := displayWidth(l[:m[4]]); col < 0 {
				col = c
			} else if c != col {
				t.Errorf("/help line %q: help starts at column %d, others at %d", l, c, col)
			}
		}
	}

	a, out, _ = newTestApp(t, true)
	if err := a.exec(context.Background(), "/help"); err != nil {
		t.Fatal(err)
	}
	var rec helpRecord
	if err := json.Unmarshal([]byte(out.String()), &rec); err != nil || rec.Type != "help" || len(rec.Commands) != len(commands) || len(rec.Keys) != len(keys) {
		t.Fatalf("JSON /help %q: %+v, %v", out.String(), rec, err)
	}
	for i, c := range commands {
		if rec.Commands[i].Name != c.name || rec.Commands[i].Args != c.args || rec.Commands[i].Help != c.help {
			t.Errorf("JSON /help entry %d = %+v for %s", i, rec.Commands[i], c.name)
		}
	}
	if rec.Command != "/help" || rec.Time == "" {
		t.Errorf("JSON /help: command %q, time %q", rec.Command, rec.Time)
	}
}

// /help fits the width it is given, whatever the width.
func TestHelpFitsTheWidth(t *testing.T) {
	for _, width := range []int{40, 60, 80, 120} {
		rows := make([][2]string, 0, len(commands))
		for _, c := range commands {
			rows = append(rows, [2]string{synopsis(c), c.help})
		}
		for _, l := range strings.Split(columns(rows, width)+columns(keys, width), "\n") {
			if strings.HasPrefix(l, "  /history") || strings.HasPrefix(l, "  /switch") {
				continue // a synopsis alone on its line may be wider than a narrow terminal
			}
			if w := displayWidth(l); w > width {
				t.Errorf("width %d: line of %d columns: %q", width, w, l)
			}
		}
	}
	for _, c := range commands {
		if w := displayWidth(strings.SplitN(commandHelp(c, 60), "\n", 3)[1]); w > 60 {
			t.Errorf("/help %s: a line of %d columns in 60", c.name, w)
		}
	}
}

// /help CMD shows one command in full, with an example; with or without
// the slash, by alias too.
func TestHelpOneCommand(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"/help send", "example: /send bob ~/photos report.pdf"},
		{"/help /history", "/history [ID|#GROUP] [N] [--server] [/WORD/]"},
		{"/help query", "also /query ID|#GROUP"},
		{"/HELP Switch", "Lines without a slash go to the target"},
	} {
		a, out, _ := newTestApp(t, false)
		if err := a.exec(context.Background(), tc.line); err != nil {
			t.Errorf("%s: %v", tc.line, err)
		}
		if got := strings.Join(strings.Fields(out.String()), " "); !strings.Contains(got, tc.want) {
			t.Errorf("%s printed %q, want %q in it", tc.line, got, tc.want)
		}
	}
	a, _, _ := newTestApp(t, false)
	if err := a.exec(context.Background(), "/help nope"); err == nil || !strings.Contains(err.Error(), "no command /nope") {
		t.Errorf("/help nope: %v", err)
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
		{"/msg", true, "usage: /msg ID|#GROUP TEXT (/help msg)"},
		{"/msg bob", true, "usage: /msg ID|#GROUP TEXT"},
		{"/login", true, "usage: /login ID"},
		{"/login a b", true, "usage: /login ID"},
		{"/register", true, "usage: /register NICK"},
		{"/accept", true, "usage: /accept"},
		{"/accept 1001 file extra", true, "usage: /accept"},
		{"/list now", true, "usage: /list"},
		{"/send bob", true, "usage: /send ID PATH..."},
		{"/help me too", true, "usage: /help"},
		{"/switch", true, "usage: /switch"},
		{"/query a b", true, "usage: /switch"},
		{"hello", false, "no target yet"},
		{"//not a command", false, "no target yet"},
		{"   ", false, "no target yet"},
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
		done := fakeserver.Async(func() error {
			id, err := a.resolve(context.Background(), tc.who)
			if id != tc.id {
				t.Errorf("resolve(%q) = %d, want %d", tc.who, id, tc.id)
			}
			return err
		})
		cmd := sc.Expect(t, "INFO")
		if !slices.Equal(cmd.Args, []string{tc.who}) {
			t.Errorf("INFO %q, want %q", cmd.Args, tc.who)
		}
		sc.Reply(t, cmd.Tag, tc.reply...)
		err := fakeserver.Await(t, done)
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

// The target changes only by the user's action; other conversations count
// as unread, listed the oldest first, as many as fit.
func TestTargetAndUnread(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	loginApp(t, a, connect(t, a))
	a.remember(1001, "bob")
	a.remember(1002, "carol")
	a.remember(1003, "小明")
	a.arrived("1001") // the first conversation, with no target: it becomes the target
	a.arrived("1001")
	a.arrived("1002")
	a.arrived("#team")
	a.arrived("1002")
	if got, want := a.prompt(), "alice → bob [3 unread: carol 2, #team 1]> "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	a.arrived("1003")
	a.mu.Lock()
	narrow := a.promptLocked(63)
	wide := a.promptLocked(200)
	a.mu.Unlock()
	if want := "alice → bob [4 unread: carol 2, #team 1, 小明 1]> "; wide != want {
		t.Errorf("wide prompt %q, want %q", wide, want)
	}
	if want := "alice → bob [4 unread: carol 2, +2 more]> "; narrow != want || displayWidth(narrow) > 42 {
		t.Errorf("prompt in 63 columns %q (%d), want %q", narrow, displayWidth(narrow), want)
	}
	// /next: the oldest unread; Alt-A: the newest.
	if err := a.exec(context.Background(), "/next"); err != nil {
		t.Fatal(err)
	}
	if a.cur != "1002" {
		t.Errorf("/next went to %q, want carol (1002)", a.cur)
	}
	a.newestUnread()
	if a.cur != "1003" {
		t.Errorf("Alt-A went to %q, want 小明 (1003)", a.cur)
	}
	if got, want := a.prompt(), "alice → 小明 [1 unread: #team 1]> "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	// A message of the target is not unread; of another it does not move the target.
	a.arrived("1003")
	a.arrived("1001")
	if got, want := a.prompt(), "alice → 小明 [2 unread: #team 1, bob 1]> "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	if err := a.exec(context.Background(), "/switch #team"); err != nil {
		t.Fatal(err)
	}
	if err := a.exec(context.Background(), "/query 1001"); err != nil {
		t.Fatal(err)
	}
	if got, want := a.prompt(), "alice → bob> "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
	if err := a.exec(context.Background(), "/next"); err == nil || !strings.Contains(err.Error(), "nothing unread") {
		t.Errorf("/next with nothing unread: %v", err)
	}
	a.newestUnread() // nothing unread: nothing happens
	if a.cur != "1001" {
		t.Errorf("Alt-A with nothing unread moved the target to %q", a.cur)
	}
}

func TestComplete(t *testing.T) {
	a, _, _ := newTestApp(t, false)
	a.remember(1001, "bob")
	a.remember(1002, "Bobby")
	a.remember(1003, "evil\x1b[31m")
	a.remember(1004, "小明")
	a.remember(1005, "小红")
	a.rememberGroup("#team")
	a.rememberGroup("#tea-room")
	for _, tc := range []struct {
		line       string
		head, tail string
		want       []string
	}{
		{"/ms", "", "", []string{"/msg "}},
		{"/", "", "", nil}, // every command: checked below
		{"/MS", "", "", []string{"/msg "}},
		{"/re", "", "", []string{"/register ", "/reject ", "/remove ", "/read "}},
		{"/q", "", "", []string{"/query ", "/quit "}},
		{"/msg b", "/msg ", "", []string{"Bobby ", "bob "}},
		{"/msg 100", "/msg ", "", []string{"1001 ", "1002 ", "1003 ", "1004 ", "1005 "}},
		{"/msg bob hel", "/msg bob ", "", nil}, // the text is not completed
		{"/list b", "/list ", "", nil},         // no argument
		{"/invite t", "/invite ", "", []string{"#tea-room ", "#team "}},
		{"/invite #team b", "/invite #team ", "", []string{"Bobby ", "bob "}},
		{"/msg e", "/msg ", "", nil}, // a nickname that is not safe to type is not offered
		{"/nope b", "/nope ", "", nil},
		{"/msg 小", "/msg ", "", []string{"小明 ", "小红 "}},
		{"/msg 小明 你好 小", "/msg 小明 你好 ", "", nil},
		{"/switch #tea", "/switch ", "", []string{"#tea-room ", "#team "}},
		{"/who 小红", "/who ", "", []string{"小红 "}},
		{"hello 小", "hello ", "", []string{"小明 ", "小红 "}}, // a plain line: nicknames
		{"你好 b", "你好 ", "", []string{"Bobby ", "bob "}},
	} {
		head, got, tail := a.complete(tc.line, utf8.RuneCountInString(tc.line))
		if tc.line == "/" {
			if len(got) != len(commands)+1 { // and /query
				t.Errorf("complete(%q): %d completions, want every command (%d) and /query", tc.line, len(got), len(commands))
			}
			continue
		}
		if head != tc.head || tail != tc.tail || !slices.Equal(got, tc.want) {
			t.Errorf("complete(%q) = %q, %q, %q; want %q, %q, %q", tc.line, head, got, tail, tc.head, tc.want, tc.tail)
		}
	}
	// In the middle of a line, what follows the cursor stays; the cursor
	// is counted in runes, as liner gives it.
	head, got, tail := a.complete("/ms bob", 3)
	if head != "" || !slices.Equal(got, []string{"/msg "}) || tail != " bob" {
		t.Errorf("complete in the middle = %q, %q, %q", head, got, tail)
	}
	head, got, tail = a.complete("/msg 小 你好", 6)
	if head != "/msg " || !slices.Equal(got, []string{"小明 ", "小红 "}) || tail != " 你好" {
		t.Errorf("complete a Chinese nickname in the middle = %q, %q, %q", head, got, tail)
	}
}

func TestCompletePaths(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Chdir(dir)
	for _, p := range []string{"docs/report.pdf", "docs/notes.txt", "dir one/file a.txt", "单据/发票.pdf", ".hidden"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, _, _ := newTestApp(t, false)
	a.remember(1001, "bob")
	for _, tc := range []struct {
		line string
		head string
		want []string
	}{
		{"/send bob d", "/send bob ", []string{`"dir one/`, "docs/"}}, // a path with a space opens a quote
		{"/send bob docs/", "/send bob ", []string{"docs/notes.txt ", "docs/report.pdf "}},
		{"/send bob docs/r", "/send bob ", []string{"docs/report.pdf "}},
		{"/send bob docs/report.pdf docs/n", "/send bob docs/report.pdf ", []string{"docs/notes.txt "}},
		{"/send bob dir", "/send bob ", []string{`"dir one/`}},
		{`/send bob "dir one/f`, "/send bob ", []string{`"dir one/file a.txt" `}},
		{"/send bob 单", "/send bob ", []string{"单据/"}},
		{"/send bob 单据/发", "/send bob ", []string{"单据/发票.pdf "}},
		{"/send bob ~", "/send bob ", []string{"~/"}},
		{"/send bob ~/do", "/send bob ", []string{"~/docs/"}},
		{"/send bob .h", "/send bob ", []string{".hidden "}},
		{"/send bob nothing", "/send bob ", nil},
		{"/send b", "/send ", []string{"bob "}}, // the first argument is a user
	} {
		head, got, _ := a.complete(tc.line, utf8.RuneCountInString(tc.line))
		if head != tc.head || !slices.Equal(got, tc.want) {
			t.Errorf("complete(%q) = %q, %q; want %q, %q", tc.line, head, got, tc.head, tc.want)
		}
	}
	if got := splitPaths(`"dir one/file a.txt" docs/notes.txt`); !slices.Equal(got, []string{"dir one/file a.txt", "docs/notes.txt"}) {
		t.Errorf("a completed quoted path is read back as %q", got)
	}
	if got := expandHome([]string{"~/docs", "~", "a~/b"}); !slices.Equal(got, []string{filepath.Join(dir, "docs"), dir, "a~/b"}) {
		t.Errorf("expandHome = %q", got)
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

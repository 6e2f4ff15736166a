package history

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// hostile is message text a peer may send: everything that could break a
// line-based file or a terminal, and text that must stay readable.
var hostile = []string{
	"hello, world",
	"你好，世界 🙂👍🏽 👩‍💻 Zoë e\u0301",
	"tab\there\tand\tthere",
	"two\nlines\r\nand a CR\r",
	"\n",
	"\t",
	`back\slash \\ \t \n \x1b \u202e \`,
	"\\",
	"\x1b[2J\x1b[31mred\x1b[0m\x1b]0;pwned\x07",
	"\x00\x01\x7f NUL, SOH and DEL",
	"C1 \u0085 \u009b31m",
	"bidi file\u202egpj.exe \u2066x\u2069 \u200e\u200f\u061c",
	"invalid \xff\xfe \xe4\xbd \xc0\xaf \xed\xa0\x80",
	"\uFFFD is a real character",
	"2026-11-22T10:00:01.123Z\t17\tin\t1000\talice\tforged record",
	"",
	strings.Repeat("长", 30000) + "\n" + strings.Repeat("x\t", 10000), // longer than the 64 KiB read buffer
}

func rec(id int64, text string) Record {
	return Record{
		Time: time.Date(2026, 11, 22, 10, 0, 1, 123456789, time.FixedZone("CST", 8*3600)),
		ID:   id, From: 1000 + id%3, Out: id%2 == 0, Nick: "小明\t\x1b[1m" + fmt.Sprint(id), Text: text,
	}
}

// stored is r as a read gives it back: time in UTC, to the millisecond.
func stored(r Record) Record {
	r.Time = r.Time.UTC().Truncate(time.Millisecond)
	return r
}

func openLog(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t *testing.T, l *Log, conv string, r Record) bool {
	t.Helper()
	added, err := l.Append(conv, r)
	if err != nil {
		t.Fatalf("Append(%q, id %d): %v", conv, r.ID, err)
	}
	return added
}

func mustRead(t *testing.T, l *Log, conv string, n int) []Record {
	t.Helper()
	recs, err := l.Read(conv, n)
	if err != nil {
		t.Fatalf("Read(%q, %d): %v", conv, n, err)
	}
	return recs
}

// checkFile fails t unless the file holds only complete, readable lines:
// valid UTF-8, six tab-separated fields, no control character but the
// final LF, no C1 control or bidi formatting character.
func checkFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return b
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a complete line", path)
	}
	for i, line := range bytes.Split(b[:len(b)-1], []byte{'\n'}) {
		if !utf8.Valid(line) {
			t.Fatalf("%s line %d is not valid UTF-8: %q", path, i+1, line)
		}
		if n := bytes.Count(line, []byte{'\t'}); n != 5 {
			t.Fatalf("%s line %d has %d tabs, want 5: %q", path, i+1, n, line)
		}
		for _, r := range string(line) {
			if r != '\t' && (r < 0x20 || r == 0x7f || hiddenRune(r)) {
				t.Fatalf("%s line %d holds %U: %q", path, i+1, r, line)
			}
		}
	}
	return b
}

func TestAppendReadRoundTrip(t *testing.T) {
	l := openLog(t, t.TempDir())
	var want []Record
	for i, text := range hostile {
		r := rec(int64(i+1), text)
		if !mustAppend(t, l, "小明", r) {
			t.Fatalf("Append(id %d) = false on a new id", r.ID)
		}
		want = append(want, stored(r))
	}
	if got := mustRead(t, l, "小明", 0); !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("record %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		t.Fatalf("Read: %d records, want %d", len(got), len(want))
	}
	for _, n := range []int{1, 3, len(want), len(want) + 5} {
		got := mustRead(t, l, "小明", n)
		if w := want[max(len(want)-n, 0):]; !reflect.DeepEqual(got, w) {
			t.Errorf("Read(n=%d): %d records, want the last %d", n, len(got), len(w))
		}
	}
	b := checkFile(t, l.Path("小明"))
	if !bytes.Contains(b, []byte("你好，世界 🙂👍🏽 👩‍💻")) {
		t.Errorf("Chinese and emoji are escaped in the file; they must stay readable")
	}
	if n := bytes.Count(b, []byte{'\n'}); n != len(hostile) {
		t.Errorf("file has %d lines, want %d", n, len(hostile))
	}

	// A second Log on the same folder reads the same.
	if got := mustRead(t, openLog(t, l.dir), "小明", 0); !reflect.DeepEqual(got, want) {
		t.Errorf("another Log reads %d records, want %d", len(got), len(want))
	}
}

func TestReadTailSmallChunks(t *testing.T) {
	defer func(c int64) { tailChunk = c }(tailChunk)
	tailChunk = 16 // force the doubling and the cut first line
	l := openLog(t, t.TempDir())
	var want []Record
	for i := range 40 {
		r := rec(int64(i+1), strings.Repeat("界", i))
		mustAppend(t, l, "bob", r)
		want = append(want, stored(r))
	}
	for _, n := range []int{1, 2, 7, 39, 40, 41} {
		got := mustRead(t, l, "bob", n)
		if w := want[max(len(want)-n, 0):]; !reflect.DeepEqual(got, w) {
			t.Errorf("Read(n=%d) = %d records, want %d", n, len(got), len(w))
		}
	}
}

func TestDedupeAcrossLogs(t *testing.T) {
	dir := t.TempDir()
	a, b := openLog(t, dir), openLog(t, dir) // as two processes would
	steps := []struct {
		l    *Log
		id   int64
		want bool
	}{
		{a, 1, true}, {b, 1, false}, {b, 2, true}, {a, 2, false}, {a, 1, false}, {a, 3, true}, {b, 3, false},
	}
	for i, s := range steps {
		if got := mustAppend(t, s.l, "alice", rec(s.id, fmt.Sprint("text ", s.id))); got != s.want {
			t.Fatalf("step %d: Append(id %d) = %v, want %v", i, s.id, got, s.want)
		}
	}
	for _, l := range []*Log{a, b} {
		for id := int64(1); id <= 4; id++ {
			has, err := l.Has("alice", id)
			if err != nil || has != (id <= 3) {
				t.Errorf("Has(%d) = %v, %v", id, has, err)
			}
		}
	}
	if got := mustRead(t, b, "alice", 0); len(got) != 3 {
		t.Fatalf("Read: %d records, want 3", len(got))
	}

	// Both at once, with overlapping ids: each id lands exactly once.
	var wg sync.WaitGroup
	added := make([][]bool, 2)
	for w, l := range []*Log{a, b} {
		added[w] = make([]bool, 200)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := int64(100 + i)
				if w == 1 {
					id = int64(299 - i) // the other end first
				}
				ok, err := l.Append("carol", rec(id, "race"))
				if err != nil {
					t.Error(err)
					return
				}
				added[w][id-100] = ok
			}
		}()
	}
	wg.Wait()
	for i := range 200 {
		if added[0][i] == added[1][i] {
			t.Fatalf("id %d added by both or neither: %v %v", 100+i, added[0][i], added[1][i])
		}
	}
	recs := mustRead(t, a, "carol", 0)
	seen := map[int64]bool{}
	for _, r := range recs {
		if seen[r.ID] {
			t.Fatalf("id %d twice in the file", r.ID)
		}
		seen[r.ID] = true
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct records, want 200", len(seen))
	}
	checkFile(t, a.Path("carol"))
}

func TestTornLastLine(t *testing.T) {
	for _, name := range []string{"fresh Log", "Log that saw the file"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			mustAppend(t, l, "bob", rec(1, "one"))
			mustAppend(t, l, "bob", rec(2, "two"))
			path := l.Path("bob")

			// A writer killed within its write leaves part of a line.
			whole := appendLine(nil, rec(3, "three, torn"))
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(whole[:len(whole)/2])
			f.Close()

			if name == "fresh Log" {
				l = openLog(t, dir)
			}
			if got := mustRead(t, l, "bob", 0); len(got) != 2 || got[1].ID != 2 {
				t.Fatalf("Read with a torn tail = %+v, want records 1 and 2", got)
			}
			if got := mustRead(t, l, "bob", 1); len(got) != 1 || got[0].ID != 2 {
				t.Fatalf("Read(1) with a torn tail = %+v, want record 2", got)
			}
			if has, err := l.Has("bob", 3); err != nil || has {
				t.Fatalf("Has(torn id 3) = %v, %v; want false", has, err)
			}
			// The torn record comes again (it was never acknowledged).
			if !mustAppend(t, l, "bob", rec(3, "three")) {
				t.Fatal("Append(id 3) after a torn id 3 = false")
			}
			mustAppend(t, l, "bob", rec(4, "four"))
			got := mustRead(t, l, "bob", 0)
			var ids []int64
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if !reflect.DeepEqual(ids, []int64{1, 2, 3, 4}) || got[2].Text != "three" {
				t.Fatalf("after the torn line: %+v", got)
			}
			checkFile(t, path)
		})
	}
}

func TestMalformedLinesSkipped(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	mustAppend(t, l, "bob", rec(1, "one"))
	junk := "garbage\n\n2026-11-22T10:00:01.123Z\t2\tsideways\t1000\tx\ty\n" +
		"2026-11-22T10:00:01.123Z\t3\tin\t1000\tx\tbad \\q escape\n" +
		"2026-11-22T10:00:01.123Z\t4\tin\t1000\tx\traw \x1b control\n" +
		"2026-11-22T10:00:01.123Z\t0\tin\t1000\tx\tid zero\n"
	f, err := os.OpenFile(l.Path("bob"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(junk)
	f.Close()
	mustAppend(t, l, "bob", rec(5, "five"))
	got := mustRead(t, l, "bob", 0)
	if len(got) != 2 || got[0].ID != 1 || got[1].ID != 5 {
		t.Fatalf("Read = %+v, want records 1 and 5", got)
	}
	// A malformed line does not hold its id: the real record may come.
	if !mustAppend(t, l, "bob", rec(3, "three")) {
		t.Fatal("id 3 of a malformed line counted as stored")
	}
}

func TestDir(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	t.Setenv("HOME", home)

	t.Setenv("XDG_DATA_HOME", xdg)
	if d, err := Dir("chat.example.org", 1001); err != nil || d != filepath.Join(xdg, "qchat", "chat.example.org", "1001") {
		t.Errorf("Dir with XDG_DATA_HOME = %q, %v", d, err)
	}
	fallback := filepath.Join(home, ".local", "share", "qchat", "srv_4000", "7")
	for _, v := range []string{"", "relative/path"} { // unset or not absolute: ignored
		t.Setenv("XDG_DATA_HOME", v)
		if d, err := Dir("srv:4000", 7); err != nil || d != fallback {
			t.Errorf("Dir with XDG_DATA_HOME=%q = %q, %v; want %q", v, d, err, fallback)
		}
	}
	os.Unsetenv("XDG_DATA_HOME") // t.Setenv restores it
	if d, err := Dir("srv:4000", 7); err != nil || d != fallback {
		t.Errorf("Dir without XDG_DATA_HOME = %q, %v; want %q", d, err, fallback)
	}

	t.Setenv("XDG_DATA_HOME", xdg)
	base := filepath.Join(xdg, "qchat")
	for _, server := range []string{
		"", ".", "..", "...", "../../etc", "../..", "/etc/passwd", "a/b", `a\b`, `..\..\x`, "C:", "C:\\Windows",
		"\x00", "a\x00b", "\n", "srv\x1b[2J", "evil\u202egpj", "服务器", "\xff\xfe", "~", "~root", "$HOME",
		strings.Repeat("a", 1000), strings.Repeat("../", 100), strings.Repeat("字", 200),
	} {
		d, err := Dir(server, 1000)
		if err != nil {
			t.Errorf("Dir(%q): %v", server, err)
			continue
		}
		elem := filepath.Base(filepath.Dir(d))
		if filepath.Dir(filepath.Dir(d)) != base || filepath.Base(d) != "1000" {
			t.Errorf("Dir(%q) = %q: not one folder below %s", server, d, base)
			continue
		}
		if elem == "." || elem == ".." || len(elem) > maxServer {
			t.Errorf("Dir(%q) = %q: server element %q is not one safe name", server, d, elem)
		}
		for _, c := range []byte(elem) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				t.Errorf("Dir(%q) = %q: byte %q in the server element", server, d, c)
				break
			}
		}
	}
	if d, _ := Dir("chat-1.example_org", 5); filepath.Base(filepath.Dir(d)) != "chat-1.example_org" {
		t.Errorf("a plain host name is changed: %q", d)
	}
}

func TestBadConversationNames(t *testing.T) {
	l := openLog(t, t.TempDir())
	for _, conv := range []string{
		"", ".", "..", ".hidden", "../x", "a/b", `a\b`, "a:b", "x\n", "x\ty", "\x1b[2J", "x\x7f",
		"x\u0085", "evil\u202egpj", "x\u2066", "\xff", strings.Repeat("a", maxConv+1),
	} {
		if _, err := l.Append(conv, rec(1, "x")); !errors.Is(err, ErrConversation) {
			t.Errorf("Append(%q) error = %v, want ErrConversation", conv, err)
		}
		if _, err := l.Read(conv, 0); !errors.Is(err, ErrConversation) {
			t.Errorf("Read(%q) error = %v, want ErrConversation", conv, err)
		}
		if _, err := l.Has(conv, 1); !errors.Is(err, ErrConversation) {
			t.Errorf("Has(%q) error = %v, want ErrConversation", conv, err)
		}
		if p := l.Path(conv); p != "" {
			t.Errorf("Path(%q) = %q, want \"\"", conv, p)
		}
	}
	entries, _ := os.ReadDir(l.dir)
	if len(entries) != 0 {
		t.Errorf("files were created for bad names: %v", entries)
	}
	for _, conv := range []string{"小明", "bob", "group-7", "a.b", "Zoë", strings.Repeat("a", maxConv)} {
		if !mustAppend(t, l, conv, rec(1, "x")) {
			t.Errorf("Append(%q) = false", conv)
		}
	}
}

func TestBadRecords(t *testing.T) {
	l := openLog(t, t.TempDir())
	for _, r := range []Record{
		{Time: time.Now()},         // id 0
		{Time: time.Time{}, ID: 1}, // year 1 in UTC is fine...
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), ID: 2}, // ...year 10000 is not
		{Time: time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), ID: 3},
	} {
		_, err := l.Append("bob", r)
		if wantOK := r.ID == 1; wantOK != (err == nil) {
			t.Errorf("Append(%v, id %d) error = %v", r.Time, r.ID, err)
		} else if err != nil && !errors.Is(err, ErrRecord) {
			t.Errorf("Append(id %d) error = %v, want ErrRecord", r.ID, err)
		}
	}
	if got := mustRead(t, l, "bob", 0); len(got) != 1 || !got[0].Time.Equal(time.Time{}) {
		t.Errorf("Read = %+v, want the year-1 record", got)
	}
}

func TestClosed(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, "bob", rec(1, "x"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Append("bob", rec(2, "x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.Read("bob", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := l.Has("bob", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Has after Close: %v", err)
	}
	if _, err := l.Conversations(); !errors.Is(err, ErrClosed) {
		t.Errorf("Conversations after Close: %v", err)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestEscapeForm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain 你好 🙂", "plain 你好 🙂"},
		{"a\tb\nc\rd\\e", `a\tb\nc\rd\\e`},
		{"\x00\x1b\x7f", `\x00\x1b\x7f`},
		{"\u0085\u202e\u2066\u200f\u061c", `\u0085\u202e\u2066\u200f\u061c`},
		{"\xff\xe4\xbd", `\xff\xe4\xbd`},
		{`\x41`, `\\x41`},
	}
	for _, tt := range tests {
		if got := string(appendEscaped(nil, tt.in)); got != tt.want {
			t.Errorf("appendEscaped(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := unescape(tt.want); err != nil || back != tt.in {
			t.Errorf("unescape(%q) = %q, %v; want %q", tt.want, back, err, tt.in)
		}
	}
	for _, bad := range []string{`\`, `a\`, `\q`, `\x4`, `\xg0`, `\u12`, `\ud800`, `\udfff`, "raw\ttab", "raw\x1b"} {
		if got, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) = %q, want an error", bad, got)
		}
	}
}

func TestSearch(t *testing.T) {
	l := openLog(t, t.TempDir())
	for i := range 10 {
		text := fmt.Sprintf("message %d", i)
		if i%3 == 0 {
			text += " invoice"
		}
		mustAppend(t, l, "1001", rec(int64(i+1), text))
	}
	has := func(r Record) bool { return strings.Contains(r.Text, "invoice") }
	for _, tc := range []struct {
		n    int
		want []int64
	}{
		{0, []int64{1, 4, 7, 10}},
		{2, []int64{7, 10}},
		{1, []int64{10}},
		{9, []int64{1, 4, 7, 10}},
	} {
		got, err := l.Search("1001", tc.n, has)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("Search(n=%d) = %v, want %v", tc.n, ids, tc.want)
		}
	}
	if got, err := l.Search("nobody", 5, has); err != nil || len(got) != 0 {
		t.Errorf("Search of a conversation without a file = %v, %v", got, err)
	}
	if _, err := l.Search("../x", 5, has); err == nil {
		t.Error("Search took a bad conversation name")
	}
}

package history

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func at(id int64, sec int) Record {
	return Record{Time: time.Date(2026, 11, 22, 10, 0, sec, 0, time.UTC), ID: id, From: 1000, Nick: "alice", Text: "m"}
}

func ids(t *testing.T, l *Log, conv string) []int64 {
	t.Helper()
	recs, err := l.Read(conv, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func merge(t *testing.T, l *Log, conv string, want int, recs ...Record) {
	t.Helper()
	n, err := l.Merge(conv, recs)
	if err != nil || n != want {
		t.Fatalf("Merge %v: %d, %v; want %d added", recs, n, err, want)
	}
}

// TestMergeInOrder: records fetched after newer ones were received go to
// their place in time order; none is there twice, however often the same
// records are merged, and a direct-chat line (negative id) keeps its place.
func TestMergeInOrder(t *testing.T) {
	l := openLog(t, t.TempDir())
	for _, r := range []Record{at(20, 20), at(-5, 25), at(30, 30)} {
		if _, err := l.Append("1001", r); err != nil {
			t.Fatal(err)
		}
	}
	merge(t, l, "1001", 3, at(10, 10), at(25, 25), at(20, 20), at(40, 40), at(10, 10))
	want := []int64{10, 20, -5, 25, 30, 40} // a tie in time: by id
	if got := ids(t, l, "1001"); !slices.Equal(got, want) {
		t.Fatalf("after a merge: %v, want %v", got, want)
	}
	merge(t, l, "1001", 0, at(10, 10), at(25, 25), at(40, 40))
	merge(t, l, "1001", 1, at(50, 50)) // after the last: appended
	if _, err := l.Append("1001", at(25, 25)); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, l, "1001"); !slices.Equal(got, append(want, 50)) {
		t.Fatalf("after merging again: %v", got)
	}
	// A merge into a conversation with no file makes one, in order.
	merge(t, l, "#g", 2, at(2, 2), at(1, 1))
	if got := ids(t, l, "#g"); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("new file: %v", got)
	}
}

// TestMergeOtherWriter: another process's Log that has the file open
// before a merge writes it anew appends to the new file, and knows the
// merged ids (no line twice).
func TestMergeOtherWriter(t *testing.T) {
	dir := t.TempDir()
	a, b := openLog(t, dir), openLog(t, dir)
	if _, err := b.Append("1001", at(20, 20)); err != nil {
		t.Fatal(err)
	}
	merge(t, a, "1001", 1, at(10, 10))
	if added, err := b.Append("1001", at(10, 10)); err != nil || added {
		t.Fatalf("the other writer added a merged record again: %v, %v", added, err)
	}
	if _, err := b.Append("1001", at(30, 30)); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, a, "1001"); !slices.Equal(got, []int64{10, 20, 30}) {
		t.Fatalf("file: %v", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "1001.log"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("merged file: %v, %v", fi.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".1001*")); len(m) != 0 {
		t.Fatalf("left behind: %v", m)
	}
}

// TestMergeKeepsOddLines: a line that does not parse stays, as it was.
func TestMergeKeepsOddLines(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	if _, err := l.Append("1001", at(20, 20)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "1001.log")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("a line of a later version\n")
	f.Close()
	merge(t, l, "1001", 1, at(10, 10))
	b, _ := os.ReadFile(path)
	want := string(appendLine(appendLine(nil, at(10, 10)), at(20, 20))) + "a line of a later version\n"
	if string(b) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", b, want)
	}
}

// TestMarks: a mark reads back what was set, 0 before; it is no
// conversation.
func TestMarks(t *testing.T) {
	l := openLog(t, t.TempDir())
	if v, err := l.Mark("sync"); err != nil || v != 0 {
		t.Fatalf("unset mark: %d, %v", v, err)
	}
	if err := l.SetMark("sync", 1234); err != nil {
		t.Fatal(err)
	}
	if v, err := l.Mark("sync"); err != nil || v != 1234 {
		t.Fatalf("mark: %d, %v", v, err)
	}
	if _, err := l.Mark("../x"); err == nil {
		t.Fatal("a mark named ../x")
	}
	if convs, err := l.Conversations(); err != nil || len(convs) != 0 {
		t.Fatalf("conversations: %v, %v", convs, err)
	}
}

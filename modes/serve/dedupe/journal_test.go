package dedupe

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func utc(es []Entry) []Entry {
	for i := range es {
		es[i].Time = es[i].Time.UTC()
	}
	return es
}

func TestJournalOutlivesTheProcess(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	j, old, err := OpenJournal(dir, 24*time.Hour, now)
	if err != nil || len(old) != 0 {
		t.Fatalf("OpenJournal on an empty folder = %v, %v", old, err)
	}
	want := []Entry{
		{Sender: 1000, CID: "k3f9qz2a.1", ID: 7, To: 1001, Time: now.Add(-25 * time.Hour)}, // too old to keep
		{Sender: 1000, CID: "k3f9qz2a.2", ID: 8, To: 1001, Time: now.Add(-time.Hour)},
		{Sender: 1002, CID: "x.1", ID: 9, Group: "#team", Time: now},
		{Sender: 1002, CID: "abcdefghijklmnopqrstuvwxyz012345", ID: 10, Group: "#abcdefghijklmnopqrstuvwxyz012345", Time: now},
	}
	for _, e := range want {
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	// No Close: what was appended is in the file (as after a SIGKILL).
	j2, got, err := OpenJournal(dir, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	j2.Close()
	j.Close()
	if !reflect.DeepEqual(utc(got), want[1:]) {
		t.Errorf("read back %+v\nwant %+v", got, want[1:])
	}
	// A torn record (a kill in the middle of its copy) is skipped, not fatal.
	path := filepath.Join(dir, "sent.ring")
	b, _ := os.ReadFile(path)
	b[2*recordSize+50] ^= 0xff // the third record
	os.WriteFile(path, b, 0o600)
	j3, got, err := OpenJournal(dir, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	j3.Close()
	if len(got) != 2 || got[0].ID != 8 || got[1].ID != 10 {
		t.Errorf("with a torn record: %+v, want ids 8 and 10", got)
	}
}

// TestJournalRing: the ring keeps the latest records, and a reopened
// journal goes on after the newest, overwriting the oldest.
func TestJournalRing(t *testing.T) {
	defer func(n int) { ringRecords = n }(ringRecords)
	ringRecords = 8
	dir := t.TempDir()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	add := func(j *Journal, from, to int) {
		for i := from; i <= to; i++ {
			if err := j.Append(Entry{Sender: 1000, CID: "c" + strconv.Itoa(i), ID: int64(i), To: 1001, Time: now.Add(time.Duration(i) * time.Millisecond)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := func(es []Entry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	j, _, err := OpenJournal(dir, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	add(j, 1, 30)
	j.Close()
	if fi, err := os.Stat(filepath.Join(dir, "sent.ring")); err != nil || fi.Size() != 8*recordSize {
		t.Fatalf("sent.ring: %v, %v; want %d bytes", fi, err, 8*recordSize)
	}
	j, got, err := OpenJournal(dir, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{23, 24, 25, 26, 27, 28, 29, 30}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("after 30 records in a ring of 8: %v, want %v", ids(got), want)
	}
	add(j, 31, 33) // over the oldest: 23, 24, 25
	j.Close()
	_, got, _ = OpenJournal(dir, time.Hour, now)
	if want := []int64{26, 27, 28, 29, 30, 31, 32, 33}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("reopened and 3 more: %v, want %v", ids(got), want)
	}
}

// TestJournalTakesOldFiles: the line-per-entry files of the version
// before the ring are read once, taken into the ring and removed.
func TestJournalTakesOldFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	os.WriteFile(filepath.Join(dir, "sent.log.1"), []byte("1000 a.1 7 1001 "+ms+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "sent.log"), []byte("1000 a.2 8 #team "+ms+"\ngarbage\n"), 0o600)
	want := []Entry{
		{Sender: 1000, CID: "a.1", ID: 7, To: 1001, Time: now},
		{Sender: 1000, CID: "a.2", ID: 8, Group: "#team", Time: now},
	}
	j, got, err := OpenJournal(dir, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if !reflect.DeepEqual(utc(got), want) {
		t.Errorf("first open: %+v, want %+v", got, want)
	}
	for _, name := range []string{"sent.log", "sent.log.1"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", name, err)
		}
	}
	_, got, err = OpenJournal(dir, time.Hour, now)
	if err != nil || !reflect.DeepEqual(utc(got), want) {
		t.Errorf("from the ring: %+v, %v; want %+v", got, err, want)
	}
}

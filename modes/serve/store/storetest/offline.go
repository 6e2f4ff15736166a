package storetest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"qchat/modes/serve/store"
)

// Offline files: rows found by recipient, sender and age; ids that only
// grow, also across a restart and a deleted row; a hash shared by two rows
// is held until the last goes; a row dropped twice is dropped once.

func (h *harness) offline(q store.OfflineQuery) string {
	h.Helper()
	fs, err := h.st.OfflineFiles(h.ctx, q)
	if err != nil {
		h.Fatalf("OfflineFiles(%+v): %v", q, err)
	}
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d>%d:%s:%d:%s", f.Sender, f.Recipient, f.Name, f.Size, f.Hash[:4]))
	}
	return strings.Join(out, " ")
}

func testOfflineFiles(h *harness) {
	a, b, c := h.user("a"), h.user("b"), h.user("c")
	now := time.Now().Truncate(time.Millisecond)
	hashX, hashY := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	add := func(from, to int64, name string, size int64, hash string, at time.Time) int64 {
		h.Helper()
		id, err := h.st.AddOfflineFile(h.ctx, store.OfflineFile{Sender: from, Recipient: to, Name: name, Size: size, Hash: hash, Created: at})
		if err != nil {
			h.Fatalf("AddOfflineFile: %v", err)
		}
		return id
	}
	id1 := add(a, b, "report.pdf", 100, hashX, now.Add(-72*time.Hour))
	id2 := add(a, c, "dir/same bytes.bin", 100, hashX, now)
	id3 := add(c, b, "写真.jpg", 5, hashY, now.Add(-time.Hour))
	if !(id1 < id2 && id2 < id3) {
		h.Fatalf("ids %d %d %d do not increase", id1, id2, id3)
	}
	got, err := h.st.OfflineFile(h.ctx, id3)
	if err != nil || got.Name != "写真.jpg" || got.Sender != c || got.Recipient != b || got.Size != 5 || got.Hash != hashY || !got.Created.Equal(now.Add(-time.Hour)) {
		h.Fatalf("OfflineFile(%d) = %+v, %v", id3, got, err)
	}
	if _, err := h.st.OfflineFile(h.ctx, id3+100); !errors.Is(err, store.ErrNoOfflineFile) {
		h.Fatalf("OfflineFile of no row: %v, want ErrNoOfflineFile", err)
	}
	want := fmt.Sprintf("%d>%d:report.pdf:100:abab %d>%d:写真.jpg:5:cdcd", a, b, c, b)
	if got := h.offline(store.OfflineQuery{Recipient: b}); got != want {
		h.Errorf("for b: %s, want %s", got, want)
	}
	want = fmt.Sprintf("%d>%d:report.pdf:100:abab %d>%d:dir/same bytes.bin:100:abab", a, b, a, c)
	if got := h.offline(store.OfflineQuery{Sender: a}); got != want {
		h.Errorf("from a: %s, want %s", got, want)
	}
	want = fmt.Sprintf("%d>%d:report.pdf:100:abab", a, b)
	if got := h.offline(store.OfflineQuery{Before: now.Add(-48 * time.Hour)}); got != want {
		h.Errorf("older than two days: %s, want %s", got, want)
	}
	if all, err := h.st.OfflineFiles(h.ctx, store.OfflineQuery{}); err != nil || len(all) != 3 {
		h.Errorf("all: %d rows (%v), want 3", len(all), err)
	}

	// Two rows hold hashX: the first drop keeps it, the second does not.
	if held, err := h.st.DropOfflineFile(h.ctx, id1); err != nil || !held {
		h.Fatalf("DropOfflineFile(%d) = %v, %v; want held", id1, held, err)
	}
	if _, err := h.st.DropOfflineFile(h.ctx, id1); !errors.Is(err, store.ErrNoOfflineFile) {
		h.Fatalf("second DropOfflineFile(%d): %v, want ErrNoOfflineFile", id1, err)
	}
	h.reopen()
	if held, err := h.st.DropOfflineFile(h.ctx, id2); err != nil || held {
		h.Fatalf("DropOfflineFile(%d) = %v, %v; want not held", id2, held, err)
	}
	// After a restart and deletions, ids still only grow.
	if id4 := add(b, a, "again", 0, hashY, now); id4 <= id3 {
		h.Fatalf("id %d after a restart is not above %d", id4, id3)
	}
	if n := h.count(`SELECT COUNT(*) FROM offline_files WHERE hash = $1`, hashY); n != 2 {
		h.Fatalf("%d rows of hash Y, want 2", n)
	}
	if n := h.count(`SELECT MAX(version) FROM schema_version`); n < 7 {
		h.Fatalf("schema version %d, want at least 7", n)
	}
}

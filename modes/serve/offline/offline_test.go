package offline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"qchat/modes/serve/store"
	"qchat/modes/serve/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	data  string
	st    *sqlite.Store
	f     *Files
	clock *clock
	free  int64
}

func newFixture(t *testing.T, quota int64) *fixture {
	t.Helper()
	x := &fixture{t: t, data: t.TempDir(), clock: &clock{t: time.Now()}, free: 1 << 40}
	st, err := sqlite.Open(x.data, "normal", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	x.st = st
	x.open(quota)
	return x
}

func (x *fixture) open(quota int64) {
	x.t.Helper()
	f, err := Open(context.Background(), x.data, Config{Quota: quota, MaxAge: time.Hour, Now: x.clock.now,
		Free: func(string) (int64, bool) { return x.free, true }}, x.st)
	if err != nil {
		x.t.Fatal(err)
	}
	x.f = f
}

// upload puts a file of n bytes with hash h as xfer would leave it in the
// incoming folder, and keeps it.
func (x *fixture) upload(h *Hold, sender, to int64, name string, n int, hash string) (store.OfflineFile, error) {
	x.t.Helper()
	dir, err := x.f.Incoming(sender, to)
	if err != nil {
		x.t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(name))
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
		x.t.Fatal(err)
	}
	return x.f.Keep(context.Background(), h, to, dir, name, hash)
}

func (x *fixture) blobs() []string {
	ents, _ := os.ReadDir(filepath.Join(x.data, "offline", "files"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name()[:4])
	}
	return out
}

var hashA, hashB = strings.Repeat("a", 64), strings.Repeat("b", 64)

// TestQuotaCountsWaitingAndUnderWay: the quota holds what waits and what
// is being uploaded; a kept file moves from the one to the other; a
// released upload gives its share back; the disk's room is checked too.
func TestQuotaCountsWaitingAndUnderWay(t *testing.T) {
	x := newFixture(t, 1000)
	ctx := context.Background()
	h, err := x.f.Reserve(ctx, 1, 600)
	if err != nil {
		t.Fatal(err)
	}
	var qe *QuotaError
	if _, err := x.f.Reserve(ctx, 1, 500); !errors.As(err, &qe) || qe.Used != 600 || qe.Quota != 1000 {
		t.Fatalf("over the quota: %v", err)
	}
	if _, err := x.f.Reserve(ctx, 2, 1000); err != nil {
		t.Fatalf("another sender has a quota of its own: %v", err)
	}
	if _, err := x.upload(h, 1, 9, "a.bin", 400, hashA); err != nil {
		t.Fatal(err)
	}
	h.Release() // 400 waiting, nothing under way
	if _, err := x.f.Reserve(ctx, 1, 601); !errors.As(err, &qe) || qe.Used != 400 {
		t.Fatalf("after the upload: %v, want 400 in use", err)
	}
	h2, err := x.f.Reserve(ctx, 1, 600)
	if err != nil {
		t.Fatalf("600 more: %v", err)
	}
	h2.Release()
	h2.Release()      // twice is once
	x.free = 10 << 20 // less than the margin kept for the database and logs
	if _, err := x.f.Reserve(ctx, 1, 100); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("a disk without room: %v", err)
	}
}

// TestSameBytesKeptOnce: two files of the same bytes share one copy,
// which goes with the last row that holds it; a second try to take a file
// meanwhile is busy; someone else's file is not yours to take.
func TestSameBytesKeptOnce(t *testing.T) {
	x := newFixture(t, 1<<20)
	ctx := context.Background()
	h, _ := x.f.Reserve(ctx, 1, 300)
	r1, err1 := x.upload(h, 1, 9, "one.bin", 100, hashA)
	r2, err2 := x.upload(h, 1, 8, "dir/two.bin", 100, hashA)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if got := x.blobs(); len(got) != 1 {
		t.Fatalf("files %v, want one copy", got)
	}
	if _, _, err := x.f.Take(ctx, r1.ID, 8); !errors.Is(err, store.ErrNoOfflineFile) {
		t.Fatalf("taking another's file: %v", err)
	}
	_, done, err := x.f.Take(ctx, r1.ID, 9)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x.f.Take(ctx, r1.ID, 9); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second take: %v", err)
	}
	if fs, _ := x.f.For(ctx, 9); len(fs) != 0 {
		t.Fatalf("a file being taken is listed: %v", fs)
	}
	if err := done(true); err != nil {
		t.Fatal(err)
	}
	if got := x.blobs(); len(got) != 1 {
		t.Fatalf("files %v: the other row still holds the bytes", got)
	}
	if _, err := x.f.Refuse(ctx, r2.ID, 8); err != nil {
		t.Fatal(err)
	}
	if got := x.blobs(); len(got) != 0 {
		t.Fatalf("files %v after the last row went", got)
	}
	if _, err := x.upload(h, 1, 9, "bad.bin", 1, "../../etc/passwd"); err == nil {
		t.Fatal("a hash that is not one was taken as a file name")
	}
}

// TestExpiryAndSweep: files past the maximum age go (not one being
// taken); at start, bytes no row holds and abandoned uploads go, and an
// upload's .part within the age stays for its resume.
func TestExpiryAndSweep(t *testing.T) {
	x := newFixture(t, 1<<20)
	ctx := context.Background()
	h, _ := x.f.Reserve(ctx, 1, 1000)
	old, _ := x.upload(h, 1, 9, "old.bin", 10, hashA)
	busy, _ := x.upload(h, 1, 9, "busy.bin", 10, strings.Repeat("c", 64))
	x.clock.add(50 * time.Minute)
	young, _ := x.upload(h, 1, 9, "young.bin", 10, hashB)
	_, done, err := x.f.Take(ctx, busy.ID, 9)
	if err != nil {
		t.Fatal(err)
	}
	x.clock.add(20 * time.Minute)
	gone, err := x.f.Expire(ctx)
	if err != nil || len(gone) != 1 || gone[0].ID != old.ID {
		t.Fatalf("expired %v, %v; want only %d", gone, err, old.ID)
	}
	done(false)
	if gone, _ := x.f.Expire(ctx); len(gone) != 1 || gone[0].ID != busy.ID {
		t.Fatalf("then %v, want %d", gone, busy.ID)
	}
	if fs, _ := x.f.For(ctx, 9); len(fs) != 1 || fs[0].ID != young.ID {
		t.Fatalf("left %v", fs)
	}

	// What a crash leaves: bytes without a row, a part of an upload under
	// way, an upload abandoned long ago.
	stray := filepath.Join(x.data, "offline", "files", strings.Repeat("d", 64))
	os.WriteFile(stray, []byte("x"), 0o600)
	live, _ := x.f.Incoming(1, 7)
	os.WriteFile(filepath.Join(live, "f.part"), []byte("x"), 0o600)
	now := x.clock.now() // the folder's time by the test's clock, not the writing's
	os.Chtimes(live, now, now)
	dead, _ := x.f.Incoming(2, 7)
	os.WriteFile(filepath.Join(dead, "g.part"), []byte("x"), 0o600)
	past := x.clock.now().Add(-2 * time.Hour)
	os.Chtimes(dead, past, past)
	x.open(1 << 20)
	if _, err := os.Stat(stray); err == nil {
		t.Error("bytes no row holds were kept")
	}
	if _, err := os.Stat(filepath.Join(live, "f.part")); err != nil {
		t.Errorf("an upload's part within the age went: %v", err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("an abandoned upload was kept")
	}
	if got := x.blobs(); len(got) != 1 || got[0] != hashB[:4] {
		t.Errorf("files %v, want only young.bin's", got)
	}
}

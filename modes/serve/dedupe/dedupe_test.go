package dedupe

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestTableRemembersTheLatest(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tb := New[int](4)
	if _, ok := tb.Get(1000, "a"); ok {
		t.Fatal("Get on an empty table found something")
	}
	for i := 1; i <= 6; i++ {
		tb.Put(1000, "c"+strconv.Itoa(i), i, now)
	}
	// The last four are kept, the first two are forgotten.
	for i := 1; i <= 6; i++ {
		v, ok := tb.Get(1000, "c"+strconv.Itoa(i))
		if want := i > 2; ok != want || (ok && v != i) {
			t.Errorf("Get(c%d) = %d, %v; want %d, %v", i, v, ok, i, want)
		}
	}
	// Senders do not see each other's ids.
	if _, ok := tb.Get(1001, "c6"); ok {
		t.Error("sender 1001 found sender 1000's id")
	}
	// A later Put of the same id shadows the earlier one.
	tb.Put(1000, "c5", 50, now)
	if v, _ := tb.Get(1000, "c5"); v != 50 {
		t.Errorf("Get(c5) after a second Put = %d, want 50", v)
	}
}

func TestTableSweep(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tb := New[string](8)
	tb.Put(1000, "old", "a", t0)
	tb.Put(1001, "new", "b", t0.Add(time.Hour))
	if n := tb.Sweep(t0.Add(30 * time.Minute)); n != 1 {
		t.Errorf("Sweep forgot %d senders, want 1", n)
	}
	if _, ok := tb.Get(1000, "old"); ok {
		t.Error("a quiet sender's id survived the sweep")
	}
	if v, ok := tb.Get(1001, "new"); !ok || v != "b" {
		t.Errorf("a recent sender's id = %q, %v after the sweep", v, ok)
	}
}

func TestTableConcurrent(t *testing.T) {
	tb := New[int](16)
	now := time.Now()
	var wg sync.WaitGroup
	for s := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender := int64(1000 + s)
			for i := range 200 {
				cid := strconv.Itoa(i)
				tb.Put(sender, cid, i, now)
				if v, ok := tb.Get(sender, cid); !ok || v != i {
					t.Errorf("sender %d: Get(%s) = %d, %v right after Put", sender, cid, v, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
}

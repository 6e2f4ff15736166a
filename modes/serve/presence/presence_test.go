package presence

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func TestCoalescerLoneChangeGoesAtOnce(t *testing.T) {
	c := NewCoalescer(time.Second)
	now, wait := c.Note(1001, t0)
	if !now || wait != 0 {
		t.Fatalf("first change: now=%v wait=%v, want at once", now, wait)
	}
	if got := c.Take(t0); !slices.Equal(got, []int64{1001}) {
		t.Fatalf("Take = %v", got)
	}
	// A quiet interval later, the next lone change goes at once too.
	if now, _ := c.Note(1002, t0.Add(time.Second)); !now {
		t.Fatal("a change after a quiet interval waited")
	}
}

func TestCoalescerMergesAnInterval(t *testing.T) {
	c := NewCoalescer(time.Second)
	c.Note(1001, t0)
	c.Take(t0)
	now, wait := c.Note(1002, t0.Add(300*time.Millisecond))
	if now || wait != 700*time.Millisecond {
		t.Fatalf("second change: now=%v wait=%v, want a wait of 700ms", now, wait)
	}
	// The others within the interval ride along: nobody else is told to take.
	for _, u := range []int64{1003, 1002, 1004, 1003} {
		if now, wait := c.Note(u, t0.Add(500*time.Millisecond)); now || wait != 0 {
			t.Fatalf("change of %d: now=%v wait=%v, want neither", u, now, wait)
		}
	}
	if got := c.Take(t0.Add(time.Second)); !slices.Equal(got, []int64{1002, 1003, 1004}) {
		t.Fatalf("Take = %v, want each user once in first-noted order", got)
	}
	if c.Pending() != 0 {
		t.Fatal("Take left users behind")
	}
}

func TestCoalescerStretched(t *testing.T) {
	c := NewCoalescer(time.Second)
	c.Note(1, t0)
	c.Take(t0)
	c.SetInterval(4 * time.Second)
	if now, wait := c.Note(2, t0.Add(time.Second)); now || wait != 3*time.Second {
		t.Fatalf("a second into a 4s interval: now=%v wait=%v, want a wait of 3s", now, wait)
	}
	if c.Settled(t0.Add(1500*time.Millisecond), time.Second) {
		t.Fatal("settled half a second after a change")
	}
	if !c.Settled(t0.Add(2*time.Second), time.Second) {
		t.Fatal("not settled a second after the last change")
	}
	c.Take(t0.Add(4 * time.Second))
	if c.Settled(t0.Add(9*time.Second), time.Second) {
		t.Fatal("settled with nothing waiting")
	}
	c.SetInterval(time.Second)
	if now, _ := c.Note(3, t0.Add(5*time.Second)); !now {
		t.Fatal("back to 1s: a change a second after the last batch waited")
	}
}

func TestLogSince(t *testing.T) {
	l := NewLog(t0, 100)
	v0 := l.Version()
	b1 := Batch{Changes: []Change{{User: 1, State: Online}, {User: 2, State: Online}}}
	l.Add(&b1)
	b2 := Batch{Changes: []Change{{User: 2, State: Offline}, {User: 3, State: Away}}}
	l.Add(&b2)
	if b1.Version != v0+1 || b2.Version != v0+2 {
		t.Fatalf("versions %d, %d after %d", b1.Version, b2.Version, v0)
	}
	users, v, ok := l.Since(v0)
	slices.Sort(users)
	if !ok || v != b2.Version || !slices.Equal(users, []int64{1, 2, 3}) {
		t.Fatalf("Since(v0) = %v %d %v", users, v, ok)
	}
	users, _, ok = l.Since(b1.Version)
	slices.Sort(users)
	if !ok || !slices.Equal(users, []int64{2, 3}) {
		t.Fatalf("Since(v1) = %v %v", users, ok)
	}
	if users, _, ok = l.Since(b2.Version); !ok || len(users) != 0 {
		t.Fatalf("Since(latest) = %v %v, want nothing", users, ok)
	}
	for _, v := range []uint64{v0 - 1, b2.Version + 1, 0} {
		if _, _, ok := l.Since(v); ok {
			t.Errorf("Since(%d) answered: a version it never gave", v)
		}
	}
}

func TestLogForgetsOldest(t *testing.T) {
	l := NewLog(t0, 3)
	v0 := l.Version()
	for u := int64(1); u <= 4; u++ {
		b := Batch{Changes: []Change{{User: u}}}
		l.Add(&b)
	}
	if _, _, ok := l.Since(v0); ok {
		t.Fatal("answered for a batch it forgot")
	}
	users, _, ok := l.Since(v0 + 1)
	slices.Sort(users)
	if !ok || !slices.Equal(users, []int64{2, 3, 4}) {
		t.Fatalf("Since(v1) = %v %v", users, ok)
	}
}

func TestLogVersionsOutliveARestart(t *testing.T) {
	before := NewLog(t0, 10)
	for range 1000 {
		b := Batch{Changes: []Change{{User: 1}}}
		before.Add(&b)
	}
	after := NewLog(t0.Add(time.Second), 10)
	if _, _, ok := after.Since(before.Version()); ok {
		t.Fatal("a version of the server before the restart was taken for one of after it")
	}
}

func TestBatchRoundTrip(t *testing.T) {
	b := Batch{Version: 77, Changes: []Change{
		{User: 1001, Nick: "alice", State: Online},
		{User: 1002, Nick: "bob", State: Away, Text: "out to  lunch"},
		{User: 1003, Nick: "Émile", State: Offline},
	}}
	data := AppendBatch(nil, b)
	got, err := ParseBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != b.Version || !slices.Equal(got.Changes, b.Changes) {
		t.Fatalf("round trip:\n%+v\n%+v", got, b)
	}
	if on, away, off := got.Counts(); on != 1 || away != 1 || off != 1 {
		t.Fatalf("Counts = %d %d %d", on, away, off)
	}
	if !bytes.Contains(data, []byte("PRESENCE 1002 bob away out to  lunch\n")) {
		t.Fatalf("the lines are not the ones clients read:\n%s", data)
	}
}

func TestParseBatchRefuses(t *testing.T) {
	for name, data := range map[string]string{
		"empty":         "",
		"no header":     "PRESENCE 1 a online\n",
		"count short":   "BATCH 1 2\nPRESENCE 1001 a online\n",
		"count long":    "BATCH 1 1\nPRESENCE 1001 a online\nPRESENCE 1002 b online\n",
		"twice":         "BATCH 1 2\nPRESENCE 1001 a online\nPRESENCE 1001 a offline\n",
		"bad state":     "BATCH 1 1\nPRESENCE 1001 a dancing\n",
		"bad id":        "BATCH 1 1\nPRESENCE x a online\n",
		"other event":   "BATCH 1 1\nNUDGE 1001 a 2026-12-02T10:00:00.000Z\n",
		"no line end":   "BATCH 1 1\nPRESENCE 1001 a online",
		"negative":      "BATCH 1 -1\n",
		"huge count":    "BATCH 1 99999999999\n",
		"control chars": "BATCH 1 1\nPRESENCE 1001 a\x1b[2J online\n",
	} {
		if _, err := ParseBatch([]byte(data)); err == nil {
			t.Errorf("%s: accepted %q", name, data)
		}
	}
}

func FuzzParseBatch(f *testing.F) {
	f.Add([]byte("BATCH 5 2\nPRESENCE 1001 alice online\nPRESENCE 1002 bob away at lunch\n"))
	f.Add([]byte("BATCH 0 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBatch(data)
		if err != nil {
			return
		}
		again, err := ParseBatch(AppendBatch(nil, b))
		if err != nil || again.Version != b.Version || !slices.Equal(again.Changes, b.Changes) {
			t.Fatalf("what ParseBatch took does not survive a round trip: %v", err)
		}
	})
}

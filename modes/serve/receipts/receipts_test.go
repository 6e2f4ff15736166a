package receipts

import (
	"cmp"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func shown(sender, reader, id int64) Mark {
	return Mark{Sender: sender, Reader: reader, Kind: Shown, ID: id}
}

// TestCoalescerLoneMarkGoesAtOnce: a mark after a quiet interval is sent
// at once, and so is the next one an interval later.
func TestCoalescerLoneMarkGoesAtOnce(t *testing.T) {
	c := NewCoalescer(time.Second)
	if send, wait := c.Note(shown(1000, 1001, 7), t0); !send || wait != 0 {
		t.Fatalf("first mark: send %v wait %v, want at once", send, wait)
	}
	if send, _ := c.Note(shown(1000, 1001, 8), t0.Add(time.Second)); !send {
		t.Fatal("a mark an interval later was held")
	}
	if due, next := c.Take(t0.Add(3 * time.Second)); len(due) != 0 || next != 0 {
		t.Fatalf("Take with nothing held = %v, %v", due, next)
	}
	if convs, held := c.Len(); convs != 0 || held != 0 {
		t.Errorf("after a quiet interval the coalescer remembers %d conversations (%d held)", convs, held)
	}
}

// TestCoalescerBurstIsOneMark: a thousand marks within an interval cost
// the first at once and one more, the highest, when the interval is over.
func TestCoalescerBurstIsOneMark(t *testing.T) {
	c := NewCoalescer(time.Second)
	sent := 0
	var wait time.Duration
	for i := int64(1); i <= 1000; i++ {
		send, w := c.Note(shown(1000, 1001, i), t0.Add(time.Duration(i-1)*time.Millisecond/2))
		if send {
			sent++
		}
		if w > 0 {
			if wait > 0 {
				t.Fatalf("told to arm Take twice (at mark %d)", i)
			}
			wait = w
		}
	}
	if sent != 1 || wait != time.Second-time.Millisecond/2 { // the second mark came 0.5 ms after the first
		t.Fatalf("sent %d at once, Take due in %v; want 1 and the rest of the interval", sent, wait)
	}
	if due, next := c.Take(t0.Add(999 * time.Millisecond)); len(due) != 0 || next != time.Millisecond {
		t.Fatalf("Take before the interval's end = %v, next %v", due, next)
	}
	due, next := c.Take(t0.Add(time.Second))
	if !slices.Equal(due, []Mark{shown(1000, 1001, 1000)}) || next != 0 {
		t.Fatalf("Take at the interval's end = %v, next %v; want the highest mark only", due, next)
	}
	// an old mark after that says nothing new
	if send, wait := c.Note(shown(1000, 1001, 500), t0.Add(5*time.Second)); send || wait != 0 {
		t.Errorf("a mark below one sent: send %v wait %v", send, wait)
	}
}

// TestCoalescerKeysApart: conversations and kinds are merged apart, and
// one Take serves them all.
func TestCoalescerKeysApart(t *testing.T) {
	c := NewCoalescer(time.Second)
	read := func(s, r, id int64) Mark { return Mark{Sender: s, Reader: r, Kind: Read, ID: id} }
	for _, m := range []Mark{shown(1000, 1001, 1), read(1000, 1001, 1), shown(1002, 1001, 3), shown(1000, 1003, 4)} {
		if send, _ := c.Note(m, t0); !send {
			t.Fatalf("%v held: it is the first of its conversation and kind", m)
		}
	}
	_, wait := c.Note(shown(1000, 1001, 2), t0.Add(100*time.Millisecond))
	c.Note(read(1000, 1001, 2), t0.Add(200*time.Millisecond))
	c.Note(shown(1002, 1001, 5), t0.Add(300*time.Millisecond))
	if wait != 900*time.Millisecond {
		t.Fatalf("Take due in %v", wait)
	}
	due, next := c.Take(t0.Add(time.Second))
	byAll := func(a, b Mark) int {
		return cmp.Or(cmp.Compare(a.Sender, b.Sender), cmp.Compare(a.Reader, b.Reader), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	}
	slices.SortFunc(due, byAll)
	want := []Mark{shown(1000, 1001, 2), read(1000, 1001, 2), shown(1002, 1001, 5)}
	slices.SortFunc(want, byAll)
	if !slices.Equal(due, want) || next != 0 {
		t.Errorf("Take = %v, next %v; want %v", due, next, want)
	}
}

// TestCoalescerBounded: conversations that hold nothing are forgotten
// once their interval is over, also without Take.
func TestCoalescerBounded(t *testing.T) {
	c := NewCoalescer(time.Second)
	for i := int64(0); i < 10000; i++ {
		c.Note(shown(1000+i, 1, 1), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if convs, _ := c.Len(); convs > 2*1000+64+1 {
		t.Errorf("%d conversations remembered; one interval holds about 1000", convs)
	}
}

// TestWaitingKeepsLatestPerConversation: the marks of an offline sender
// are kept per conversation and kind, the latest winning, bounded per
// sender and in all.
func TestWaitingKeepsLatestPerConversation(t *testing.T) {
	w := NewWaiting(3, 5)
	w.Keep(shown(1000, 1001, 5))
	w.Keep(shown(1000, 1001, 3)) // says less: dropped
	w.Keep(Mark{Sender: 1000, Reader: 1001, Kind: Read, ID: 4})
	w.Keep(shown(1000, 1002, 9))
	w.Keep(shown(1000, 1001, 6)) // replaces 5, and is now the newest
	w.Keep(shown(1000, 1003, 1)) // a fourth conversation: the oldest goes
	got := w.Take(1000)
	want := []Mark{shown(1000, 1002, 9), shown(1000, 1001, 6), shown(1000, 1003, 1)}
	if !slices.Equal(got, want) {
		t.Errorf("Take = %v, want %v", got, want)
	}
	if w.Take(1000) != nil || w.Len() != 0 {
		t.Error("marks taken are still kept")
	}
	for i := int64(0); i < 10; i++ {
		w.Keep(shown(2000+i, 1, 1))
	}
	if w.Len() != 5 {
		t.Errorf("%d marks kept, the bound is 5", w.Len())
	}
}

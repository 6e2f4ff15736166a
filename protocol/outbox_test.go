package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"qchat/protocol"
)

// recorder is a writer that keeps what it was given; gate, when not nil,
// holds every write until it is closed.
type recorder struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	gate    chan struct{}
	err     error
	entered atomic.Int32 // writes begun
}

func (r *recorder) Write(p []byte) (int, error) {
	r.entered.Add(1)
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// waitFor polls until cond holds (a guard turns a hang into a failure).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOutboxPauseWritesEarlierLinesThenLastAndHoldsTheRest(t *testing.T) {
	old := &recorder{gate: make(chan struct{})}
	o := protocol.NewOutbox(old, 1<<20, time.Second, nil)
	if err := o.Write([]byte("early 1\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flusher to write", func() bool { return old.entered.Load() == 1 })
	o.Write([]byte("early 2\n"))
	// The flusher is stuck in its first write: Pause must wait for it
	// and keep the order.
	paused := make(chan error)
	go func() { paused <- o.Pause([]byte("234 go ahead\n")) }()
	close(old.gate)
	if err := <-paused; err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if got, want := old.String(), "early 1\nearly 2\n234 go ahead\n"; got != want {
		t.Fatalf("before the pause the old writer got %q, want %q", got, want)
	}
	// After Pause nothing reaches the old writer, whoever writes.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.Write(fmt.Appendf(nil, "held %d\n", i))
		}()
	}
	wg.Wait()
	o.WriteForce([]byte("BYE x\n"))
	if got := old.String(); got != "early 1\nearly 2\n234 go ahead\n" {
		t.Fatalf("a line reached the old writer after Pause: %q", got)
	}
	if o.Queued() == 0 {
		t.Fatal("lines written during the pause were dropped")
	}
	next := &recorder{}
	o.Resume(next, []byte("220 again\n"))
	waitFor(t, "the held lines on the new writer", func() bool { return strings.Count(next.String(), "\n") == 6 })
	if !strings.HasPrefix(next.String(), "220 again\n") {
		t.Errorf("the first line of the new writer is not the one Resume was given: %q", next.String())
	}
	for i := range 4 {
		if !strings.Contains(next.String(), fmt.Sprintf("held %d\n", i)) {
			t.Errorf("held %d missing from the new writer: %q", i, next.String())
		}
	}
	if !strings.HasSuffix(next.String(), "BYE x\n") {
		t.Errorf("order lost: %q", next.String())
	}
	o.Write([]byte("after\n"))
	if !o.Close(time.Second) {
		t.Fatal("Close after Resume did not flush")
	}
	if !strings.HasSuffix(next.String(), "after\n") || strings.Contains(old.String(), "after") {
		t.Fatalf("a line after Resume went to the wrong writer: old %q new %q", old.String(), next.String())
	}
}

func TestOutboxPauseWithNothingQueuedWritesOnlyLast(t *testing.T) {
	w := &recorder{}
	o := protocol.NewOutbox(w, 1<<20, time.Second, nil)
	if err := o.Pause([]byte("234 x\n")); err != nil {
		t.Fatal(err)
	}
	if w.String() != "234 x\n" {
		t.Fatalf("got %q", w.String())
	}
	// Closing while paused writes nothing more and says so.
	o.Write([]byte("late\n"))
	if o.Close(time.Second) {
		t.Fatal("Close reported everything written while a line was held")
	}
	if w.String() != "234 x\n" {
		t.Fatalf("Close while paused wrote %q", w.String())
	}
}

func TestOutboxPauseReportsTheWriteError(t *testing.T) {
	boom := errors.New("boom")
	w := &recorder{err: boom}
	var heard []error
	o := protocol.NewOutbox(w, 1<<20, time.Second, func(err error) { heard = append(heard, err) })
	if err := o.Pause([]byte("234 x\n")); !errors.Is(err, boom) {
		t.Fatalf("Pause = %v, want %v", err, boom)
	}
	if err := o.Write([]byte("x\n")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed Pause = %v, want the write error", err)
	}
	if len(heard) != 0 {
		t.Fatalf("onError heard %v: Pause returns its error, it does not report it too", heard)
	}
}

func TestOutboxPauseAfterClose(t *testing.T) {
	o := protocol.NewOutbox(&recorder{}, 1<<20, time.Second, nil)
	o.Close(time.Second)
	if err := o.Pause([]byte("234 x\n")); !errors.Is(err, protocol.ErrClosed) {
		t.Fatalf("Pause after Close = %v, want ErrClosed", err)
	}
}

// TestOutboxPauseUnderConcurrentWriters has writers on other goroutines
// all through a pause: every line arrives exactly once, the old writer's
// bytes end with the pause line, and no line is torn.
func TestOutboxPauseUnderConcurrentWriters(t *testing.T) {
	old, next := &recorder{}, &recorder{}
	o := protocol.NewOutbox(old, 1<<24, time.Second, nil)
	const writers, each = 4, 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				if err := o.Write(fmt.Appendf(nil, "w%d-%d\n", w, i)); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		}()
	}
	close(start)
	if err := o.Pause([]byte("PAUSE\n")); err != nil {
		t.Fatal(err)
	}
	o.Resume(next, nil)
	wg.Wait()
	if !o.Close(5 * time.Second) {
		t.Fatal("not everything was written")
	}
	if !strings.HasSuffix(old.String(), "PAUSE\n") {
		t.Fatalf("the old writer's bytes do not end with the pause line: ...%q", tail(old.String()))
	}
	all := strings.Split(strings.TrimSuffix(old.String()+next.String(), "\n"), "\n")
	seen := make(map[string]bool)
	for _, l := range all {
		if seen[l] {
			t.Fatalf("line %q twice", l)
		}
		seen[l] = true
	}
	if len(seen) != writers*each+1 {
		t.Fatalf("%d distinct lines, want %d", len(seen), writers*each+1)
	}
}

func tail(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}

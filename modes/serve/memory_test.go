package serve

import (
	"runtime"
	"testing"
	"time"
)

var memorySink [][]byte

// TestMemoryReturnerAfterBurst: garbage of a burst that the idle server
// would keep is collected and returned on the next quiet check, and a
// quiet heap without excess is left alone.
func TestMemoryReturnerAfterBurst(t *testing.T) {
	runtime.GC()
	m := newMemoryReturner()
	now := time.Now()
	m.check(now) // baseline of the allocation counter
	if m.check(now.Add(m.every)) {
		t.Fatal("returned memory from a heap without excess")
	}

	for range 96 {
		memorySink = append(memorySink, make([]byte, 1<<20))
	}
	runtime.GC()     // a collection at the peak, as in a login rush
	memorySink = nil // the burst is over: 96 MiB of garbage
	m.check(now.Add(2 * m.every))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if !m.check(now.Add(3 * m.every)) {
		t.Fatal("kept 96 MiB of garbage after the burst")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.HeapReleased < before.HeapReleased+32<<20 {
		t.Errorf("released %d MiB, want the burst back", (after.HeapReleased-before.HeapReleased)>>20)
	}
	if m.check(now.Add(3 * m.every).Add(time.Millisecond)) {
		t.Error("checked again before its interval")
	}
}

// TestMemoryReturnerIdle: a growth below the burst size is returned once
// the server is idle, not while it allocates.
func TestMemoryReturnerIdle(t *testing.T) {
	runtime.GC()
	m := newMemoryReturner()
	now := time.Now()
	m.check(now)
	for range 12 {
		memorySink = append(memorySink, make([]byte, 1<<20))
	}
	runtime.GC()
	memorySink = nil // 12 MiB left behind, as a burst of writes leaves its buffers pooled
	for range 4 {
		memorySink = append(memorySink, make([]byte, 1<<20)) // still allocating
	}
	memorySink = nil
	if m.check(now.Add(m.every)) {
		t.Fatal("returned a small growth while the server allocates")
	}
	if !m.check(now.Add(2 * m.every)) {
		t.Fatal("kept 12 MiB once idle")
	}
	if m.check(now.Add(3 * m.every)) {
		t.Fatal("returned again with nothing new")
	}
}

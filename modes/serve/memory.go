package serve

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryReturner gives memory back to the operating system after a burst.
//
// A login rush in LAN mode tells every online user about every login: ten
// thousand logins in a minute queue some fifty million presence lines, and
// the outboxes of clients that read a little slowly grow while they do.
// When the rush is over the heap is small again, but Go's background
// scavenger returns the freed pages slowly (tens of MiB a minute), so the
// server's RSS stays at its peak long after its live data shrank back to a
// few KiB per connection. The returner watches the heap's free-but-held
// bytes and, once they have stayed large for two checks in a row (the
// burst is over, not still growing), returns them at once.
//
// The garbage of a burst is invisible until a collection runs, and an idle
// server allocates too little to start one; so the returner watches what
// the heap holds (objects, garbage and free pages not yet returned). When
// it has grown by more than minFree since the last return while
// allocation has almost stopped, the returner collects and returns the
// free pages (two collections, a few tens of milliseconds of CPU for a
// heap of ten thousand sessions). Growth that is live data (more
// sessions) costs one such return per minFree of growth, nothing more.
//
// It runs on the sweeper goroutine.
//
// Smaller growth is returned too once the server is idle (it allocated
// less than idleAlloc since the last check): what a burst of writes left
// in the outboxes' buffer pool (sync.Pool keeps buffers until two
// collections, and an idle server starts none: a presence batch to ten
// thousand sessions leaves tens of MiB pooled) and the garbage of the
// last logins. A collection of an idle heap costs nobody anything.
type memoryReturner struct {
	every   time.Duration // between checks
	minFree uint64        // growth worth a forced return
	idleMin uint64        // growth worth a return once idle
	idle    uint64        // allocated bytes per check below which the server is idle
	next    time.Time
	base    uint64 // heap held after the last return (or at the start)
	allocs  uint64 // cumulative allocated bytes at the last check
	samples []metrics.Sample
}

func newMemoryReturner() *memoryReturner {
	m := &memoryReturner{
		every:   5 * time.Second,
		minFree: 32 << 20,
		idleMin: 4 << 20,
		idle:    1 << 20,
		samples: []metrics.Sample{
			{Name: "/memory/classes/heap/objects:bytes"}, // live and garbage not yet swept
			{Name: "/memory/classes/heap/unused:bytes"},  // room in spans in use
			{Name: "/memory/classes/heap/free:bytes"},    // free pages not yet returned
			{Name: "/gc/heap/allocs:bytes"},              // allocated since start
		},
	}
	m.base, m.allocs = m.read()
	return m
}

// read returns the bytes the heap holds and the bytes allocated so far.
func (m *memoryReturner) read() (held, allocs uint64) {
	metrics.Read(m.samples)
	var v [4]uint64
	for i := range v {
		if m.samples[i].Value.Kind() == metrics.KindUint64 {
			v[i] = m.samples[i].Value.Uint64()
		}
	}
	return v[0] + v[1] + v[2], v[3]
}

// check runs when a check is due. It returns memory when the heap holds
// over minFree more than after the last return while the server allocated
// less than a sixteenth of that growth since the last check (the burst is
// over: the server is nearly idle, so the collections cost nothing that
// anyone waits for). It reports whether it returned memory.
func (m *memoryReturner) check(now time.Time) bool {
	if now.Before(m.next) {
		return false
	}
	m.next = now.Add(m.every)
	held, allocs := m.read()
	recent := allocs - m.allocs
	m.allocs = allocs
	if held < m.base {
		m.base = held // the heap shrank on its own
	}
	switch grew := held - m.base; {
	case held < m.base+m.idleMin:
		return false // nothing worth returning
	case grew < m.minFree && recent > m.idle:
		return false // a little growth, and not idle: collections will reuse it
	case recent > grew/16:
		return false // still busy
	}
	// Two collections: the first frees the garbage, and each halves the
	// stacks that grew during the burst (the read loops' stacks grow in
	// bcrypt and in a broadcast, and shrink only when collected).
	runtime.GC()
	debug.FreeOSMemory()
	m.base, m.allocs = m.read()
	return true
}

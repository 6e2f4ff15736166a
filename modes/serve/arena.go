package serve

import (
	"sync"
	"unsafe"

	"qchat/modes/serve/store"
)

// arena hands out what the commands of one burst of input need that
// outlives the burst: the text of the MSG and ACK lines (the strings of
// those parsed commands are parts of it; other verbs keep what they are
// given for long, and get strings of their own), the entries and items of the messages
// posted, their event lines and the client ids remembered for resends.
// They are carved from chunks, one allocation for many messages, and a
// chunk is never written again where it was handed out: a part stays
// valid for as long as anything refers to it, and the garbage collector
// frees a chunk when nothing does. An entry that waits long (its
// recipient does not acknowledge) is given copies of its own when it is
// stored (unpinned), so that it keeps only its entry chunk alive; a
// client id kept for resends is copied too.
//
// A session holds an arena only while it has input to handle: it takes
// one from arenas before a burst and puts it back before it waits for
// input, so an idle connection holds none, and a partly used chunk goes
// on serving whichever session takes it next. An arena is used by one
// goroutine at a time.
type arena struct {
	text    []byte
	lines   []byte
	entries []entry
	items   []store.Item
	recs    []sentRec
}

var arenas = sync.Pool{New: func() any { return new(arena) }}

const (
	arenaBytes   = 8 << 10 // a chunk of text or lines
	arenaEntries = 16      // a chunk of entries, items or records (an entry that waits long keeps its chunk)
)

// str returns a copy of b as a string, a part of the arena's text.
func (a *arena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaBytes/4 {
		return string(b)
	}
	if cap(a.text)-len(a.text) < len(b) {
		a.text = make([]byte, 0, arenaBytes)
	}
	off := len(a.text)
	a.text = append(a.text, b...)
	return unsafe.String(&a.text[off], len(b))
}

// line returns an empty buffer with room for n bytes, which appending up
// to n bytes never takes out of the arena nor into another line.
func (a *arena) line(n int) []byte {
	if n > arenaBytes/4 {
		return make([]byte, 0, n)
	}
	if cap(a.lines)-len(a.lines) < n {
		a.lines = make([]byte, 0, arenaBytes)
	}
	off := len(a.lines)
	a.lines = a.lines[:off+n]
	return a.lines[off : off : off+n]
}

func (a *arena) entry() *entry {
	if len(a.entries) == cap(a.entries) {
		a.entries = make([]entry, 0, arenaEntries)
	}
	a.entries = a.entries[:len(a.entries)+1]
	return &a.entries[len(a.entries)-1]
}

func (a *arena) item() *store.Item {
	if len(a.items) == cap(a.items) {
		a.items = make([]store.Item, 0, arenaEntries)
	}
	a.items = a.items[:len(a.items)+1]
	return &a.items[len(a.items)-1]
}

func (a *arena) rec() *sentRec {
	if len(a.recs) == cap(a.recs) {
		a.recs = make([]sentRec, 0, arenaEntries)
	}
	a.recs = a.recs[:len(a.recs)+1]
	return &a.recs[len(a.recs)-1]
}

// The session's side: its arena while it handles input (ar), or a plain
// allocation for what is made outside a burst.

// takeArena gives the session an arena for the input it is about to
// handle.
func (s *session) takeArena() {
	if s.ar == nil {
		s.ar = arenas.Get().(*arena)
	}
}

// releaseArena gives the session's arena back: it is about to wait for
// input.
func (s *session) releaseArena() {
	if s.ar != nil {
		arenas.Put(s.ar)
		s.ar = nil
	}
}

func (s *session) str(b []byte) string {
	if s.ar == nil {
		return string(b)
	}
	return s.ar.str(b)
}

func (s *session) newEntry() *entry {
	if s.ar == nil {
		return new(entry)
	}
	return s.ar.entry()
}

func (s *session) newItem() *store.Item {
	if s.ar == nil {
		return new(store.Item)
	}
	return s.ar.item()
}

func (s *session) newRec() *sentRec {
	if s.ar == nil {
		return new(sentRec)
	}
	return s.ar.rec()
}

// lineFor returns a buffer with room for the event line of it.
func (s *session) lineFor(it *store.Item) []byte {
	n := len(it.Kind) + len(it.Nick) + len(it.Body) + 72 // ids, time, spaces, LF
	if s.ar == nil {
		return make([]byte, 0, n)
	}
	return s.ar.line(n)
}

package protocol

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// Benchmarks of the codec's hot paths: what the server does for every
// message (parse MSG, build the MSG event and the 250 reply, parse ACK) and
// what the line I/O costs per line. Run with
//
//	go test -run '^$' -bench . -benchmem ./protocol/

var (
	benchText   = strings.Repeat("x", 64)
	benchMsg    = []byte("@a1b2 MSG 1001 " + benchText)
	benchEvent  = []byte("MSG 123456 1000 alice 2025-01-02T03:04:05.678Z " + benchText)
	benchReply  = []byte("@a1b2 250 123456 delivered 1001 2025-01-02T03:04:05.678Z")
	benchAck32  = []byte("ACK " + benchIDs(32))
	benchSink   []byte
	benchTimeAt = time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
)

func benchIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(1_000_000 + i)
	}
	return strings.Join(ids, ",")
}

func BenchmarkParseCommandMsg(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMsg)))
	for b.Loop() {
		if _, err := ParseCommand(benchMsg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCommandToMsg is the server's hot path: the command parsed
// into a Command it reuses, its strings parts of a buffer of text that is
// appended to and never rewritten (a server's arena: one allocation per
// chunk of many lines).
func BenchmarkParseCommandToMsg(b *testing.B) {
	var c Command
	var chunk []byte
	text := func(line []byte) string {
		if cap(chunk)-len(chunk) < len(line) {
			chunk = make([]byte, 0, 64<<10)
		}
		off := len(chunk)
		chunk = append(chunk, line...)
		return unsafe.String(&chunk[off], len(line))
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMsg)))
	for b.Loop() {
		if err := ParseCommandTo(&c, benchMsg, text); err != nil {
			b.Fatal(err)
		}
	}
	if c.Verb != "MSG" || len(c.Args) != 2 {
		b.Fatalf("parsed %+v", c)
	}
}

// BenchmarkParseCommandToAckUpTo is a cumulative ACK, parsed in place.
func BenchmarkParseCommandToAckUpTo(b *testing.B) {
	var c Command
	line := []byte("ACK ..1000123")
	text := func(line []byte) string { return unsafe.String(&line[0], len(line)) } // valid while line is
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseCommandTo(&c, line, text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCommandAck32(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommand(benchAck32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendCommandMsg(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for b.Loop() {
		var err error
		if buf, err = AppendCommand(buf[:0], "a1b2", "MSG", "1001", benchText); err != nil {
			b.Fatal(err)
		}
	}
	benchSink = buf
}

func BenchmarkParseLineMsgEvent(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if _, err := ParseLine(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseLineReply(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLine(benchReply); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEventMsg(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = AppendEvent(buf[:0], "MSG", "123456", "1000", "alice", FormatTime(benchTimeAt), benchText)
	}
	benchSink = buf
}

func BenchmarkAppendReply(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = AppendReply(buf[:0], "a1b2", CodeSent, false, "123456 delivered 1001 2025-01-02T03:04:05.678Z")
	}
	benchSink = buf
}

func BenchmarkFormatTime(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchSink = append(benchSink[:0], FormatTime(benchTimeAt)...)
	}
}

// repeatReader returns the same block of lines forever.
type repeatReader struct {
	block []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.block[r.off:])
		n += c
		r.off = (r.off + c) % len(r.block)
	}
	return n, nil
}

func BenchmarkLineReader(b *testing.B) {
	line := append(append([]byte(nil), benchMsg...), '\n')
	rd := NewLineReader(&repeatReader{block: bytes.Repeat(line, 64)}, MaxLine)
	defer rd.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := rd.ReadLine(); err != nil {
			b.Fatal(err)
		}
	}
}

// countWriter counts what it is given.
type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// BenchmarkOutbox measures queueing a line and having it written, from one
// writer (a session's read loop sending to a recipient).
func BenchmarkOutbox(b *testing.B) {
	line := append(append([]byte(nil), benchEvent...), '\n')
	w := &countWriter{}
	o := NewOutbox(w, 1<<30, time.Second, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	n := 0
	for b.Loop() {
		if err := o.Write(line); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if !o.Close(10*time.Second) || w.n.Load() != int64(n*len(line)) {
		b.Fatalf("wrote %d bytes of %d", w.n.Load(), n*len(line))
	}
}

// BenchmarkOutboxParallel is the same with writers on every core.
func BenchmarkOutboxParallel(b *testing.B) {
	line := append(append([]byte(nil), benchEvent...), '\n')
	w := &countWriter{}
	o := NewOutbox(w, 1<<30, time.Second, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := o.Write(line); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	if !o.Close(10*time.Second) || w.n.Load() != n.Load()*int64(len(line)) {
		b.Fatalf("wrote %d bytes of %d", w.n.Load(), n.Load()*int64(len(line)))
	}
}

var _ io.Reader = (*repeatReader)(nil)

package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"qchat/protocol"
)

// Results of ReadLine as strings: the line itself, or one of these.
const (
	tooLong = "<ErrLineTooLong>"
	eof     = "<EOF>"
)

// collect reads lines until an error other than ErrLineTooLong and returns
// what ReadLine gave, the final error last. It fails t when ReadLine returns
// a line holding LF or over max-1 bytes, or does not stop.
func collect(t testing.TB, lr *protocol.LineReader, max, calls int) []string {
	t.Helper()
	var out []string
	for range calls {
		line, err := lr.ReadLine()
		switch {
		case err == nil:
			if bytes.IndexByte(line, '\n') >= 0 || len(line) >= max {
				t.Fatalf("ReadLine returned %d bytes %q: holds LF or passes the limit %d", len(line), clipq(line), max)
			}
			out = append(out, string(line))
		case errors.Is(err, protocol.ErrLineTooLong):
			if line != nil {
				t.Fatalf("ErrLineTooLong with a line %q", clipq(line))
			}
			out = append(out, tooLong)
		case err == io.EOF:
			return append(out, eof)
		default:
			return append(out, "<"+err.Error()+">")
		}
	}
	t.Fatalf("ReadLine did not reach the end after %d calls; so far %q", calls, out)
	return nil
}

func clipq(b []byte) string { return protocol.Clip(string(b), 80) }

// chunkReader returns its data in reads of the given sizes, in turn.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.sizes[c.i%len(c.sizes)], len(p), len(c.data))
	c.i++
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestLineReaderSplitEverywhere(t *testing.T) {
	in := "alpha\nbeta\r\n\n  gamma  delta \n你好🙂\r\nx\rz\nlast"
	want := []string{"alpha", "beta", "", "  gamma  delta ", "你好🙂", "x\rz", "last", eof}
	check := func(name string, r io.Reader) {
		t.Helper()
		lr := protocol.NewLineReader(r, 64)
		defer lr.Close()
		if got := collect(t, lr, 64, 100); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %q, want %q", name, got, want)
		}
	}
	b := []byte(in)
	for i := 0; i <= len(b); i++ {
		for j := i; j <= len(b); j++ {
			check(fmt.Sprintf("split %d,%d", i, j), io.MultiReader(bytes.NewReader(b[:i]), bytes.NewReader(b[i:j]), bytes.NewReader(b[j:])))
		}
	}
	check("one byte", iotest.OneByteReader(bytes.NewReader(b)))
	check("half", iotest.HalfReader(bytes.NewReader(b)))
	check("data with EOF", iotest.DataErrReader(bytes.NewReader(b)))
	check("one byte, data with EOF", iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(b))))
	for size := 1; size <= len(b)+1; size++ {
		check(fmt.Sprintf("chunks of %d", size), &chunkReader{data: b, sizes: []int{size}})
	}
	check("uneven chunks", &chunkReader{data: b, sizes: []int{3, 1, 7, 2, 11}})
}

func TestLineReaderLimit(t *testing.T) {
	const max = 10
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"max-1 bytes and LF", "123456789\nok\n", []string{"123456789", "ok", eof}},
		{"max bytes and LF", "1234567890\nok\n", []string{tooLong, "ok", eof}},
		{"max-2 bytes and CRLF", "12345678\r\nok\n", []string{"12345678", "ok", eof}},
		{"max-1 bytes and CRLF", "123456789\r\nok\n", []string{tooLong, "ok", eof}},
		{"far too long", strings.Repeat("x", 95) + "\nok\n", []string{tooLong, "ok", eof}},
		{"two long lines", strings.Repeat("x", 25) + "\n" + strings.Repeat("y", 11) + "\nok\n", []string{tooLong, tooLong, "ok", eof}},
		{"long line between short ones", "a\n" + strings.Repeat("x", 30) + "\nb\n", []string{"a", tooLong, "b", eof}},
		{"long last line without LF", "a\n" + strings.Repeat("x", 30), []string{"a", tooLong, eof}},
		{"max-1 bytes without LF at EOF", "a\n123456789", []string{"a", "123456789", eof}},
		{"empty lines", "\n\n\r\n", []string{"", "", "", eof}},
	}
	for _, tt := range tests {
		b := []byte(tt.in)
		for _, size := range []int{1, 2, 3, 5, 9, 10, 11, 13, 64, 1000} {
			lr := protocol.NewLineReader(&chunkReader{data: b, sizes: []int{size}}, max)
			if got := collect(t, lr, max, 100); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s, reads of %d: got %q, want %q", tt.name, size, got, tt.want)
			}
		}
	}
}

// TestLineReaderLongLineChunks sends over-long lines in many pieces, through
// the switch from the small to the big buffer, at the real limit.
func TestLineReaderLongLineChunks(t *testing.T) {
	max := protocol.MaxLine
	long := strings.Repeat("y", 3*max) // over the limit several times over
	fits := strings.Repeat("z", max-1) // the longest line that fits
	in := []byte("first\n" + long + "\n" + fits + "\n" + long + "\r\nlast\n")
	want := []string{"first", tooLong, fits, tooLong, "last", eof}
	for _, sizes := range [][]int{{1}, {100}, {511}, {512}, {513}, {4096}, {max}, {max + 1}, {64 << 10}, {1 << 20}, {300, 5000}, {6, 506, 1, 70000}} {
		lr := protocol.NewLineReader(&chunkReader{data: in, sizes: sizes}, max)
		if got := collect(t, lr, max, 100); !reflect.DeepEqual(got, want) {
			t.Errorf("reads of %v: got %q, want %q", sizes, clipAll(got), clipAll(want))
		}
		lr.Close()
	}
	lr := protocol.NewLineReader(iotest.OneByteReader(bytes.NewReader(in)), max)
	if got := collect(t, lr, max, 100); !reflect.DeepEqual(got, want) {
		t.Errorf("one byte reads: got %q, want %q", clipAll(got), clipAll(want))
	}
}

// TestLineReaderAcrossBufferSwitch uses a limit above the small buffer so
// that lines that fit, and lines that do not, span the switch to the big one.
func TestLineReaderAcrossBufferSwitch(t *testing.T) {
	const max = 1000
	for _, n := range []int{500, 510, 511, 512, 513, 600, 998, 999, 1000, 1001, 1500, 5000} {
		line := strings.Repeat("q", n)
		in := []byte(line + "\nnext\n" + line + "\n")
		want := []string{line, "next", line, eof}
		if n >= max {
			want = []string{tooLong, "next", tooLong, eof}
		}
		for _, sizes := range [][]int{{1}, {7}, {512}, {256, 300}, {511, 2}, {1 << 16}} {
			lr := protocol.NewLineReader(&chunkReader{data: in, sizes: sizes}, max)
			if got := collect(t, lr, max, 100); !reflect.DeepEqual(got, want) {
				t.Errorf("line of %d, reads of %v: got %q, want %q", n, sizes, clipAll(got), clipAll(want))
			}
			lr.Close()
		}
	}
}

func clipAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = protocol.Clip(x, 20)
	}
	return out
}

// TestLineReaderPipelined delivers far more than the big buffer in reads
// that each hold many lines.
func TestLineReaderPipelined(t *testing.T) {
	var in bytes.Buffer
	var want []string
	for i := range 5000 {
		line := fmt.Sprintf("@t%d MSG %d %s", i, 1000+i%7, strings.Repeat("消息", i%40))
		if i%100 == 99 {
			line = strings.Repeat("L", protocol.MaxLine-1-i%3) // near the limit
		}
		in.WriteString(line)
		if i%2 == 0 {
			in.WriteString("\r")
		}
		in.WriteString("\n")
		want = append(want, line)
	}
	want = append(want, eof)
	if in.Len() <= 256<<10 {
		t.Fatalf("only %d bytes", in.Len())
	}
	for _, sizes := range [][]int{{1 << 30}, {64 << 10}, {100000, 3, 70000}} {
		lr := protocol.NewLineReader(&chunkReader{data: in.Bytes(), sizes: sizes}, protocol.MaxLine)
		got := collect(t, lr, protocol.MaxLine, 10000)
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("reads of %v: line %d = %q, want %q", sizes, i, protocol.Clip(got[i], 40), protocol.Clip(want[i], 40))
				}
			}
			t.Fatalf("reads of %v: %d results, want %d", sizes, len(got), len(want))
		}
		lr.Close()
	}
}

func TestLineReaderEOF(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{eof}},
		{"\n", []string{"", eof}},
		{"last", []string{"last", eof}},
		{"a\nlast", []string{"a", "last", eof}},
		{"a\nlast\r", []string{"a", "last", eof}},
		{"\r", []string{"", eof}},
	}
	for _, tt := range tests {
		lr := protocol.NewLineReader(strings.NewReader(tt.in), 64)
		if got := collect(t, lr, 64, 10); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
		for range 3 { // EOF stays EOF
			if _, err := lr.ReadLine(); err != io.EOF {
				t.Errorf("%q: ReadLine after EOF = %v", tt.in, err)
			}
		}
	}
}

func TestLineReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("a\npartial"), iotest.ErrReader(boom))
	lr := protocol.NewLineReader(r, 64)
	if line, err := lr.ReadLine(); err != nil || string(line) != "a" {
		t.Fatalf("ReadLine = %q, %v", line, err)
	}
	if line, err := lr.ReadLine(); !errors.Is(err, boom) {
		t.Fatalf("ReadLine = %q, %v; want %v (a partial line is not a line on error)", line, err, boom)
	}
}

// TestLineReaderDefaultLimit: a limit of 0 (or a huge one) still bounds
// what the reader buffers.
func TestLineReaderDefaultLimit(t *testing.T) {
	for _, max := range []int{0, -1, 1 << 30} {
		in := strings.Repeat("w", 1<<20) + "\nok\n"
		lr := protocol.NewLineReader(strings.NewReader(in), max)
		got := collect(t, lr, 1<<20, 10)
		if want := []string{tooLong, "ok", eof}; !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: got %q, want %q", max, clipAll(got), want)
		}
	}
}

// spyConn records what the LineReader does to a real connection: the size
// of the buffer of the last read that returned data, and each read that
// ended on the reader's own idle deadline.
type spyConn struct {
	net.Conn
	lastLen  atomic.Int64
	timeouts chan struct{}
}

func (c *spyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastLen.Store(int64(len(p)))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		select {
		case c.timeouts <- struct{}{}:
		default:
		}
	}
	return n, err
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func pipePair(t *testing.T) (client, server net.Conn) {
	client, server = net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestLineReaderIdleRelease: a reader that borrowed the big buffer and then
// sat idle gives it back (its reads use the small buffer again) and keeps
// reading lines. The writer waits for the release to happen, as a peer
// falling silent would; nothing is timed by the test.
func TestLineReaderIdleRelease(t *testing.T) {
	for name, pair := range map[string]func(*testing.T) (net.Conn, net.Conn){"tcp": tcpPair, "pipe": pipePair} {
		t.Run(name, func(t *testing.T) {
			client, server := pair(t)
			spy := &spyConn{Conn: server, timeouts: make(chan struct{}, 1)}
			lr := protocol.NewLineReader(spy, protocol.MaxLine)
			defer lr.Close()
			big := strings.Repeat("x", 600) // more than the small buffer
			const rounds = 3

			werr := make(chan error, 1)
			go func() {
				werr <- func() error {
					for i := range rounds {
						if _, err := io.WriteString(client, big+"\n"); err != nil {
							return err
						}
						select {
						case <-spy.timeouts:
						case <-time.After(10 * time.Second):
							client.Close() // unblock the reader
							return errors.New("the reader never went idle (no deadline read ended)")
						}
						if _, err := fmt.Fprintf(client, "after %d\n", i); err != nil {
							return err
						}
					}
					return nil
				}()
			}()

			for i := range rounds {
				line, err := lr.ReadLine()
				if err != nil || string(line) != big {
					t.Fatalf("round %d: ReadLine = %q, %v; want the big line", i, clipq(line), err)
				}
				if n := spy.lastLen.Load(); n <= 512 {
					t.Fatalf("round %d: a 600-byte line was read with a %d-byte buffer", i, n)
				}
				line, err = lr.ReadLine() // blocks past the idle release
				if err != nil || string(line) != fmt.Sprintf("after %d", i) {
					t.Fatalf("round %d: ReadLine after idle = %q, %v", i, line, err)
				}
				if n := spy.lastLen.Load(); n > 512 {
					t.Errorf("round %d: after the idle release the reader still reads with a %d-byte buffer", i, n)
				}
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			client.Close()
			if _, err := lr.ReadLine(); err == nil {
				t.Fatal("ReadLine after the peer closed: no error")
			}
		})
	}
}

// scriptConn is a connection whose reads follow a script. A step's error is
// returned together with the last bytes of its data, as io.Reader allows
// (crypto/tls returns (n, io.EOF) when close_notify follows the data).
type scriptConn struct {
	steps     []step
	deadlines int
}

type step struct {
	data string
	err  error
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.steps) == 0 {
		return 0, io.EOF
	}
	s := &c.steps[0]
	n := copy(p, s.data)
	s.data = s.data[n:]
	if s.data == "" {
		err := s.err
		c.steps = c.steps[1:]
		return n, err
	}
	return n, nil
}

func (c *scriptConn) SetReadDeadline(time.Time) error { c.deadlines++; return nil }

// TestLineReaderIdleReadDataWithEOF: the read that waits for input while
// holding the big buffer gets the last lines together with io.EOF. They
// must come out one by one, as on every other path.
func TestLineReaderIdleReadDataWithEOF(t *testing.T) {
	big := strings.Repeat("x", 600)
	c := &scriptConn{steps: []step{{data: big + "\n"}, {data: "a\nb\n", err: io.EOF}}}
	lr := protocol.NewLineReader(c, protocol.MaxLine)
	got := collect(t, lr, protocol.MaxLine, 10) // fails on a line holding LF
	if c.deadlines == 0 {
		t.Fatal("the idle path was not taken")
	}
	if want := []string{big, "a", "b", eof}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", clipAll(got), clipAll(want))
	}
}

// TestLineReaderIdleReadDataWithTimeout: the idle read returns data and the
// deadline error at once. The data must not be thrown away.
func TestLineReaderIdleReadDataWithTimeout(t *testing.T) {
	big := strings.Repeat("x", 600)
	c := &scriptConn{steps: []step{{data: big + "\n"}, {data: "hello\n", err: os.ErrDeadlineExceeded}}}
	lr := protocol.NewLineReader(c, protocol.MaxLine)
	got := collect(t, lr, protocol.MaxLine, 10)
	if c.deadlines == 0 {
		t.Fatal("the idle path was not taken")
	}
	if want := []string{big, "hello", eof}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", clipAll(got), clipAll(want))
	}
}

// stepReader gives one chunk per Read, then errWait until the next step.
type stepReader struct {
	chunks []string
	ready  bool
}

var errWait = errors.New("nothing yet")

func (s *stepReader) Read(p []byte) (int, error) {
	if !s.ready || len(s.chunks) == 0 {
		return 0, errWait
	}
	s.ready = false
	n := copy(p, s.chunks[0])
	s.chunks = s.chunks[1:]
	return n, nil
}

func TestLineReaderIdle(t *testing.T) {
	src := &stepReader{chunks: []string{"one\ntw", "o\nthree\n"}}
	lr := protocol.NewLineReader(src, 100)
	src.ready = true
	if l, err := lr.ReadLine(); err != nil || string(l) != "one" {
		t.Fatalf("ReadLine = %q, %v", l, err)
	}
	if _, err := lr.ReadLine(); err != errWait {
		t.Fatalf("ReadLine with half a line and nothing more: %v", err)
	}
	if lr.Idle() {
		t.Fatal("Idle gave back a buffer holding half a line")
	}
	src.ready = true
	for _, want := range []string{"two", "three"} {
		if l, err := lr.ReadLine(); err != nil || string(l) != want {
			t.Fatalf("ReadLine = %q, %v; want %q", l, err, want)
		}
	}
	if _, err := lr.ReadLine(); err != errWait {
		t.Fatal(err)
	}
	if !lr.Idle() || len(lr.Buffered()) != 0 {
		t.Fatal("Idle kept the buffer of a drained reader")
	}
	src.chunks, src.ready = []string{"four\n"}, true
	if l, err := lr.ReadLine(); err != nil || string(l) != "four" {
		t.Fatalf("after Idle: %q, %v", l, err)
	}
}

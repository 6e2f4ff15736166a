package chat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"qchat/protocol"
)

// guard bounds every wait of these tests. A passing test never waits for
// it: it only turns a hang into a failure.
const guard = 10 * time.Second

// wireTime is a time as the server writes it.
const wireTime = "2026-11-22T10:00:00.000Z"

// fakeServer is a qchat server played by the test: it listens on a free
// loopback port, greets every connection, and hands the connections to
// the test, which reads the client's lines and writes the server's.
type fakeServer struct {
	ln       net.Listener
	greeting string // written on every connection ("" for none)
	conns    chan *serverConn

	mu   sync.Mutex
	open []net.Conn
}

func newFakeServer(t testing.TB, greeting string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, greeting: greeting, conns: make(chan *serverConn, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			if s.greeting != "" {
				io.WriteString(c, s.greeting+"\n")
			}
			s.conns <- &serverConn{c: c, r: bufio.NewReader(c)}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.open {
			c.Close()
		}
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

// accept returns the next connection a client made.
func (s *fakeServer) accept(t testing.TB) *serverConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(guard):
		t.Fatal("no client connected")
		return nil
	}
}

// serverConn is the server's side of one client connection.
type serverConn struct {
	c net.Conn
	r *bufio.Reader
}

// next reads the next line the client wrote (without its LF).
func (sc *serverConn) next(t testing.TB) string {
	t.Helper()
	sc.c.SetReadDeadline(time.Now().Add(guard))
	line, err := sc.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the client's next line: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// expect reads the next line and checks that it is a well-formed request
// with this verb.
func (sc *serverConn) expect(t testing.TB, verb string) protocol.Command {
	t.Helper()
	line := sc.next(t)
	cmd, err := protocol.ParseCommand([]byte(line))
	if err != nil {
		t.Fatalf("client wrote %q: not a valid request: %v", line, err)
	}
	if cmd.Verb != verb {
		t.Fatalf("client wrote %q, want a %s request", line, verb)
	}
	return cmd
}

// reply writes reply lines with the request's tag.
func (sc *serverConn) reply(t testing.TB, tag string, lines ...string) {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		if tag != "" {
			b.WriteString("@" + tag + " ")
		}
		b.WriteString(l + "\n")
	}
	sc.write(t, b.String())
}

// send writes lines as they are (events, untagged replies).
func (sc *serverConn) send(t testing.TB, lines ...string) {
	t.Helper()
	sc.write(t, strings.Join(lines, "\n")+"\n")
}

func (sc *serverConn) write(t testing.TB, s string) {
	t.Helper()
	sc.c.SetWriteDeadline(time.Now().Add(guard))
	if _, err := io.WriteString(sc.c, s); err != nil {
		t.Fatalf("writing to the client: %v", err)
	}
}

// eof checks that the client closed the connection without writing more.
func (sc *serverConn) eof(t testing.TB) {
	t.Helper()
	sc.c.SetReadDeadline(time.Now().Add(guard))
	line, err := sc.r.ReadString('\n')
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("want the connection closed, got %q, %v", line, err)
	}
	if line != "" {
		t.Fatalf("want the connection closed, got %q", line)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// async runs f on its own goroutine; await waits for its result.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

func await[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatal("timed out waiting for a result")
		panic("unreachable")
	}
}

// terminalUnsafe is, from the documentation (PROTOCOL.md section 8), what
// must never reach a terminal raw: C0, DEL and C1 controls, the bidi
// formatting characters, and invalid UTF-8. It says what it found, or "".
// s may be several printed lines: the LF between them is fine.
func terminalUnsafe(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		if r != '\n' && unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return fmt.Sprintf("raw %U", r)
		}
	}
	return ""
}

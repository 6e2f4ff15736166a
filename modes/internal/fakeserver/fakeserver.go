// Package fakeserver is a qchat server played by a test, for the tests of
// the client side (modes/client, chat, recv): it listens on a free loopback
// port, greets every connection, and hands each connection to the test,
// which reads the client's lines and writes the server's, line by line, as
// a transcript.
//
// It knows the wire format (protocol) and nothing of what a real server
// decides: the test says every reply. It is for tests only.
package fakeserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"qchat/protocol"
)

// Guard bounds every wait of these tests. A passing test never waits for
// it: it only turns a hang into a failure.
const Guard = 10 * time.Second

// Greeting is a real server's first line.
const Greeting = "220 test qchat/1 ready receipts"

// WireTime is a time as the server writes it.
const WireTime = "2026-11-22T10:00:00.000Z"

// Server listens on a free loopback port and hands the connections to
// the test.
type Server struct {
	ln       net.Listener
	greeting string
	conns    chan *Conn

	mu   sync.Mutex
	open []net.Conn
}

// New starts a server that writes greeting ("" for none) on every
// connection. It stops when the test ends, closing every connection.
func New(t testing.TB, greeting string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln, greeting: greeting, conns: make(chan *Conn, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(s.conns)
				return
			}
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			if s.greeting != "" {
				io.WriteString(c, s.greeting+"\n")
			}
			s.conns <- &Conn{c: c, r: bufio.NewReader(c)}
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

// Addr is the address clients dial.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening: a client's next dial is refused.
func (s *Server) Close() { s.ln.Close() }

// Accept returns the next connection a client made.
func (s *Server) Accept(t testing.TB) *Conn {
	t.Helper()
	select {
	case c, ok := <-s.conns:
		if !ok {
			t.Fatal("the server is closed")
		}
		return c
	case <-time.After(Guard):
		t.Fatal("no client connected")
		return nil
	}
}

// Conns is where connections wait until the test takes them (Accept
// takes the next one, or fails the test after Guard); it is closed when
// the server is.
func (s *Server) Conns() <-chan *Conn { return s.conns }

// Conn is the server's side of one client connection.
type Conn struct {
	c net.Conn
	r *bufio.Reader
}

// Close closes the connection (the server went away).
func (sc *Conn) Close() { sc.c.Close() }

// Raw is the connection itself, for a test that takes it over (a TLS
// handshake after STARTTLS). Bytes that Next read ahead are not in it.
func (sc *Conn) Raw() net.Conn { return sc.c }

// Next reads the next line the client wrote (without its LF).
func (sc *Conn) Next(t testing.TB) string {
	t.Helper()
	sc.c.SetReadDeadline(time.Now().Add(Guard))
	line, err := sc.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the client's next line: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// Expect reads the next line and checks that it is a well-formed request
// with this verb.
func (sc *Conn) Expect(t testing.TB, verb string) protocol.Command {
	t.Helper()
	line := sc.Next(t)
	cmd, err := protocol.ParseCommand([]byte(line))
	if err != nil {
		t.Fatalf("client wrote %q: not a valid request: %v", line, err)
	}
	if cmd.Verb != verb {
		t.Fatalf("client wrote %q, want a %s request", line, verb)
	}
	return cmd
}

// Answer reads the next request, which must have this verb, and replies
// with lines (tagged as the request was); it returns the request.
func (sc *Conn) Answer(t testing.TB, verb string, lines ...string) protocol.Command {
	t.Helper()
	cmd := sc.Expect(t, verb)
	sc.Reply(t, cmd.Tag, lines...)
	return cmd
}

// Login plays a successful login: USER, then PASS, answered "230 id nick".
// It returns the user and password the client gave.
func (sc *Conn) Login(t testing.TB, id int64, nick string) (user, password string) {
	t.Helper()
	u := sc.Answer(t, "USER", "331 password required")
	p := sc.Answer(t, "PASS", fmt.Sprintf("230 %d %s", id, nick))
	return strings.Join(u.Args, " "), strings.Join(p.Args, " ")
}

// Reply writes reply lines with the request's tag.
func (sc *Conn) Reply(t testing.TB, tag string, lines ...string) {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		if tag != "" {
			b.WriteString("@" + tag + " ")
		}
		b.WriteString(l + "\n")
	}
	sc.Write(t, b.String())
}

// Send writes lines as they are (events, untagged replies).
func (sc *Conn) Send(t testing.TB, lines ...string) {
	t.Helper()
	sc.Write(t, strings.Join(lines, "\n")+"\n")
}

// Write writes raw bytes.
func (sc *Conn) Write(t testing.TB, s string) {
	t.Helper()
	sc.c.SetWriteDeadline(time.Now().Add(Guard))
	if _, err := io.WriteString(sc.c, s); err != nil {
		t.Fatalf("writing to the client: %v", err)
	}
}

// EOF checks that the client closed the connection without writing more.
func (sc *Conn) EOF(t testing.TB) {
	t.Helper()
	sc.c.SetReadDeadline(time.Now().Add(Guard))
	line, err := sc.r.ReadString('\n')
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("want the connection closed, got %q, %v", line, err)
	}
	if line != "" {
		t.Fatalf("want the connection closed, got %q", line)
	}
}

// Async runs f on its own goroutine; Await waits for its result.
func Async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

// Await waits for the result of Async, at most Guard.
func Await[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Guard):
		t.Fatal("timed out waiting for a result")
		panic("unreachable")
	}
}

// TerminalUnsafe is, from the documentation (PROTOCOL.md section 8), what
// must never reach a terminal raw: C0, DEL and C1 controls, the bidi
// formatting characters, and invalid UTF-8. It says what it found in the
// line s, or "".
func TerminalUnsafe(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return fmt.Sprintf("raw %U", r)
		}
	}
	return ""
}

// TerminalUnsafeLines is TerminalUnsafe for several printed lines: the LF
// between them is fine.
func TerminalUnsafeLines(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if why := TerminalUnsafe(l); why != "" {
			return why
		}
	}
	return ""
}

// Buffer is a bytes.Buffer safe for the goroutines of a client under test
// (its stdout, its stderr).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

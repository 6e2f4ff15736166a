package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// Reasons a session ends. They are logged with every close and sent to the
// client in the BYE event, so tests and admins can tell closes apart.
const (
	reasonQuit         = "quit"          // the client said QUIT
	reasonEOF          = "eof"           // the client closed the connection
	reasonReadError    = "read-error"    // the connection failed while reading
	reasonWriteError   = "write-error"   // the connection failed while writing
	reasonSlowConsumer = "slow-consumer" // the client did not read what it was sent
	reasonPingTimeout  = "ping-timeout"  // no answer to the keepalive PING
	reasonLoginTimeout = "login-timeout" // not logged in before the deadline
	reasonPreLogin     = "prelogin-limit"
	reasonAuthFailures = "auth-failures" // too many wrong passwords
	reasonTakeover     = "takeover"      // the same account logged in elsewhere
	reasonShutdown     = "shutdown"      // the server is stopping
)

// session is one client connection. Its read loop (run) reads a line,
// runs the command's handler inline (so commands keep their order) and
// goes on; everything it sends goes through the outbox, which never
// blocks. Other goroutines only call send, replyf and close.
type session struct {
	srv    *Server
	conn   net.Conn
	id     uint64
	remote string
	rd     *protocol.LineReader
	out    *protocol.Outbox
	start  time.Time

	// Read-loop state.
	pending    *account // set by USER
	userSent   bool
	preLogin   int
	failures   int
	held       []*mailbox // group copies queued by this session's MSGs, not yet sent (msgGroup)
	heldCopies int

	mu   sync.Mutex // guards user and nick for other goroutines
	user int64      // 0 until logged in; fixed after
	nick string

	lastRead atomic.Int64 // server clock (unix ns) of the last line read
	pingAt   atomic.Int64 // when an unanswered PING was sent, 0 if none
	closed   atomic.Bool
	reason   atomic.Pointer[string]
}

func newSession(srv *Server, conn net.Conn, id uint64) *session {
	s := &session{srv: srv, conn: conn, id: id, remote: conn.RemoteAddr().String(), start: time.Now()}
	s.rd = protocol.NewLineReader(conn, protocol.MaxLine)
	s.out = protocol.NewOutbox(conn, srv.cfg.MaxOutbound, srv.cfg.WriteTimeout, s.writeFailed)
	s.lastRead.Store(srv.now())
	return s
}

// loggedIn returns the session's user id, 0 before login.
func (s *session) loggedIn() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user
}

func (s *session) nickname() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nick
}

// run is the read loop; it returns when the connection is done.
func (s *session) run() {
	defer s.cleanup()
	s.replyf("", protocol.CodeGreeting, "%s qchat/1 ready", s.srv.cfg.Name)
	for {
		if s.held != nil && bytes.IndexByte(s.rd.Buffered(), '\n') < 0 {
			s.releaseHeld() // never wait for input with copies held back
		}
		line, err := s.rd.ReadLine()
		if errors.Is(err, protocol.ErrLineTooLong) {
			s.replyf("", protocol.CodeTooLong, "line too long (limit %d bytes); ignored", protocol.MaxLine)
			continue
		}
		if err != nil {
			if s.closed.Load() {
				return
			}
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				s.close(reasonEOF, "")
			} else {
				s.close(reasonReadError, err.Error())
			}
			return
		}
		s.lastRead.Store(s.srv.now())
		s.pingAt.Store(0)
		cmd, err := protocol.ParseCommand(line)
		if errors.Is(err, protocol.ErrEmptyLine) {
			continue
		}
		if err != nil {
			s.replyErr(cmd.Tag, err)
			continue
		}
		if s.held != nil && cmd.Verb != "MSG" && cmd.Verb != "ACK" {
			s.releaseHeld() // nor run what may take a while
		}
		s.dispatch(&cmd)
		if s.closed.Load() {
			return
		}
	}
}

// cleanup runs once, when the read loop ends.
func (s *session) cleanup() {
	s.close(reasonEOF, "") // no-op when already closing
	s.releaseHeld()
	if user := s.loggedIn(); user != 0 {
		s.srv.offers.sessionGone(s)
		s.srv.po.detach(s)
		if s.srv.hub.logout(s) {
			s.srv.announce(user, s.nickname(), "offline", "")
		}
	}
	s.srv.forget(s)
	s.rd.Close()
	reason := *s.reason.Load()
	s.srv.log.Info("session closed", "conn", s.id, "remote", s.remote, "user", s.loggedIn(), "reason", reason)
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed)
}

// send queues a line; false means the session is closing.
func (s *session) send(line []byte) bool {
	err := s.out.Write(line)
	if err == nil {
		return true
	}
	if errors.Is(err, protocol.ErrSlowConsumer) {
		s.close(reasonSlowConsumer, fmt.Sprintf("more than %d bytes waiting to be read", s.srv.cfg.MaxOutbound))
	}
	return false
}

// writeFailed hears the outbox's first write failure (flusher goroutine).
func (s *session) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.close(reasonSlowConsumer, fmt.Sprintf("a write waited more than %s", s.srv.cfg.WriteTimeout))
		return
	}
	s.close(reasonWriteError, err.Error())
}

// replyf sends a one-line reply.
func (s *session) replyf(tag string, code int, format string, args ...any) {
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	s.send(protocol.AppendReply(nil, tag, code, false, text))
}

// replyLines sends a multi-line reply: lines as continuations, then last.
func (s *session) replyLines(tag string, code int, lines []string, last string) {
	var b []byte
	for _, l := range lines {
		b = protocol.AppendReply(b, tag, code, true, l)
	}
	s.send(protocol.AppendReply(b, tag, code, false, last))
}

// close ends the session for reason: the client is told (BYE) unless it
// left on its own, what is queued is flushed for a moment, then the
// connection is closed, which ends the read loop. Safe from any goroutine;
// only the first call counts.
func (s *session) close(reason, text string) {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.reason.Store(&reason)
	if reason != reasonEOF && reason != reasonReadError && reason != reasonWriteError && reason != reasonQuit {
		if text == "" {
			text = reason
		}
		s.out.WriteForce(protocol.AppendEvent(nil, "BYE", reason, text))
	}
	go func() {
		s.out.Close(time.Second)
		s.conn.Close()
	}()
}

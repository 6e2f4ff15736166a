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
	"syscall"
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
	conn   net.Conn // what the session speaks on: raw, or TLS after STARTTLS (read loop only)
	raw    net.Conn // the TCP connection; close closes it
	id     uint64
	remote string
	rd     *protocol.LineReader
	out    *protocol.Outbox
	start  time.Time

	// Read-loop state.
	tls        bool     // STARTTLS done
	local      bool     // the peer is on this host (loopback)
	pending    *account // set by USER
	userSent   bool
	preLogin   int
	failures   int
	held       []*mailbox // group copies queued by this session's MSGs, not yet sent (msgGroup)
	heldCopies int
	ackIDs     []int64 // the ids of the ACK being handled (reused)
	cmd        protocol.Command
	ar         *arena // while handling input (arena.go)
	text       func([]byte) string
	lim        sessionLimits // abuse limits (abuse.go)

	mu   sync.Mutex // guards user and nick for other goroutines
	user int64      // 0 until logged in; fixed after
	nick string

	prefs atomic.Uint32 // the user's receipts and typing settings (prefNoReceipts, ...): receipts.go

	lastRead atomic.Int64 // server clock (unix ns) of the last line read
	in       atomic.Bool  // logged in (for the sweeper: no lock)
	pingAt   atomic.Int64 // when an unanswered PING was sent, 0 if none
	closed   atomic.Bool
	reason   atomic.Pointer[string]

	// Parking (park.go): nil rc and nw for a session that never parks.
	park       atomic.Int32    // parkRunning, parkAsked, ...; moves under mu or by CAS
	parkGen    atomic.Uint32   // this park's number, in the parker's events
	wheelAt    atomic.Int64    // the tick of its check in the wheel (wheel.go)
	rc         syscall.RawConn // the socket
	nw         noWaiter        // what rd reads
	parkFD     int32
	parkedAt   time.Time // read loop only
	epollAdded bool      // the socket is in the parker's set (read loop only)
}

func newSession(srv *Server, conn net.Conn, id uint64) *session {
	s := &session{srv: srv, conn: conn, raw: conn, id: id, remote: conn.RemoteAddr().String(), start: time.Now(),
		local: isLoopback(conn.RemoteAddr())}
	s.rd = protocol.NewLineReader(s.parkable(conn), protocol.MaxLine)
	s.text = s.str
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

// run greets the client and runs the read loop, on the session's first
// goroutine.
func (s *session) run() {
	s.greet()
	if !s.serve() {
		s.cleanup()
	}
}

// greet sends the greeting: the first line on a connection, and the first
// line inside TLS after STARTTLS (section 1.1), so that a client trusts
// nothing it read in clear.
func (s *session) greet() { s.send(s.greeting()) }

func (s *session) greeting() []byte {
	return protocol.AppendReply(nil, "", protocol.CodeGreeting, false, s.srv.cfg.Name+" qchat/1 ready "+s.srv.extensions())
}

// serve is the read loop. It returns true when the session parked (park.go:
// the goroutine must end without touching it), false when the connection
// is done (the caller cleans up).
func (s *session) serve() (parked bool) {
	for {
		if bytes.IndexByte(s.rd.Buffered(), '\n') < 0 {
			s.releaseHeld() // never wait for input with copies held back
			s.releaseArena()
		}
		line, err := s.rd.ReadLine()
		if errors.Is(err, protocol.ErrLineTooLong) {
			s.replyf("", protocol.CodeTooLong, "line too long (limit %d bytes); ignored", protocol.MaxLine)
			continue
		}
		if err != nil {
			if parked, retry := s.parkOn(err); parked || retry {
				if parked {
					return true
				}
				continue
			}
			if s.closed.Load() {
				return false
			}
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				s.close(reasonEOF, "")
			} else {
				s.close(reasonReadError, err.Error())
			}
			return false
		}
		s.lastRead.Store(s.srv.now())
		s.pingAt.Store(0)
		if s.park.Load() == parkAsked {
			s.unasked()
		}
		text := s.text // the hot verbs' strings are parts of the arena
		if !hotVerb(line) {
			text = nil // what other verbs keep (nicknames, profiles, groups, offers) lives long: its own strings
		}
		s.takeArena()
		err = protocol.ParseCommandTo(&s.cmd, line, text)
		if errors.Is(err, protocol.ErrEmptyLine) {
			continue
		}
		if err != nil {
			s.replyErr(s.cmd.Tag, err)
			continue
		}
		if s.held != nil && s.cmd.Verb != "MSG" && s.cmd.Verb != "ACK" {
			s.releaseHeld() // nor run what may take a while
		}
		s.dispatch(&s.cmd)
		if s.closed.Load() {
			return false
		}
	}
}

// cleanup runs once, when the read loop ends for good.
func (s *session) cleanup() {
	s.close(reasonEOF, "") // no-op when already closing
	s.releaseHeld()
	s.releaseArena()
	s.releaseUnauth()
	if user := s.loggedIn(); user != 0 {
		s.srv.offers.sessionGone(s)
		s.srv.po.detach(s, s.srv.soc.groupKeysOf(user))
		if s.srv.hub.logout(s) {
			s.srv.notePresence(user)
		}
	}
	s.srv.forget(s)
	s.rd.Close()
	reason := *s.reason.Load()
	s.srv.log.Info("session closed", "conn", s.id, "remote", s.remote, "user", s.loggedIn(), "reason", reason)
	s.srv.wg.Done()
}

// hotVerb reports whether line is a MSG or an ACK (any case, after an
// optional tag): the commands of the message path, whose strings are
// parts of the session's arena (arena.go).
func hotVerb(line []byte) bool {
	line = bytes.TrimLeft(line, " ")
	if len(line) > 0 && line[0] == '@' {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return false
		}
		line = bytes.TrimLeft(line[i:], " ")
	}
	if len(line) < 4 || line[3] != ' ' {
		return false
	}
	v := [3]byte{line[0] | 0x20, line[1] | 0x20, line[2] | 0x20}
	return v == [3]byte{'m', 's', 'g'} || v == [3]byte{'a', 'c', 'k'}
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
		s.raw.Close()
		s.unpark() // a parked session has no goroutine to notice
	}()
}

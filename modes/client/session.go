package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"qchat/protocol"
)

// Session is a connection to a server that heals, shared by chat and recv.
// It owns dial, login and the reconnect loop, and re-exposes the events of
// each connection as one stream. When the connection is lost it says so
// (a ConnEvent), reconnects with backoff and jitter, logs in again with the
// credentials of the last Login (kept in memory only, never on disk), sends
// again what the server did not answer (the Outbox) and says when it is
// back. Given several servers (the nodes of one service), it goes round
// them and moves to another when its own is lost (servers.go). It ends
// only for good reasons: a wrong password, a server key that
// is refused, a BYE that must not be fought (another login of the same
// account), being unreachable for GiveUp, or Close and Quit.
//
// Its methods are safe for concurrent use. Events must be read until the
// channel is closed, as with Client.
type Session struct {
	cfg    SessionConfig
	clock  Clock
	events chan Event
	outbox *Outbox
	ctx    context.Context // ends with Close or Quit: stops dials and waits
	stop   context.CancelFunc
	done   chan struct{} // closed once the session has ended and its events are closed

	servers []string // SessionConfig.Addr, split (servers.go)

	mu       sync.Mutex
	cl       *Client       // the connection, nil while down
	up       chan struct{} // closed while cl is set; a new one while down
	lostAt   time.Time     // when the connection was lost (while down)
	lostWhy  error
	user, pw string           // the last Login, for logging in again
	tokens   map[string]Token // resumption tokens of the last login, by server, for logging in again (resume.go)
	me       User
	server   string // the server's name from its first greeting
	err      error  // why the session ended
	started  bool

	// Several servers (servers.go).
	at        int             // the index in servers of cl's server (while down: of the one lost)
	noForeign map[string]bool // servers that refused another server's token

	// Acknowledgements (Ack): the durable events forwarded and not yet
	// acknowledged, each with the connection it came on, and the
	// cumulative ACK held back while more of them are on their way to the
	// reader.
	fwd   []fwdEvent
	ackHi int64
	ackCl *Client
}

// fwdEvent is a durable event the session forwarded: its msgid and the
// connection that brought it.
type fwdEvent struct {
	id int64
	cl *Client
}

// SessionConfig is what a Session is told.
type SessionConfig struct {
	// Addr is the server, HOST:PORT, or several comma-separated: the
	// nodes of one service, gone round as servers.go says.
	Addr string
	// Order is where a list starts: OrderRandom ("" too) or OrderListed.
	Order string
	// Pick returns a random index below n (default math/rand/v2.IntN):
	// tests make the choice of a server known.
	Pick func(n int) int
	// Skipped, when set, hears of each server of a list that Connect
	// could not reach in its first round: a reconnecting event whose
	// Failed and Err say which and why, and Server which one is next.
	Skipped func(ConnEvent)
	Options Options
	Backoff Backoff
	Clock   Clock // nil: the real clock
	// User and Password, when set, log every connection in, the first
	// too (recv). Otherwise the session logs in with Login (chat).
	User, Password string
	// GiveUp ends the session when the server has been unreachable this
	// long (0: never).
	GiveUp time.Duration
	// WaitUp is how long a request waits for a lost connection to come
	// back before it fails (0: it fails at once, saying so).
	WaitUp time.Duration
}

// Event is one item of a session's stream: a line from the server, or a
// change of the connection.
type Event struct {
	Line protocol.Line
	Conn *ConnEvent // nil for a line
}

// Connection states of a ConnEvent.
const (
	ConnLost         = "lost"         // the connection ended; the session reconnects
	ConnReconnecting = "reconnecting" // an attempt is about to be made
	ConnBack         = "back"         // connected (and logged in) again
)

// ConnEvent is a change of the connection.
type ConnEvent struct {
	State   string
	Time    time.Time
	Server  string        // lost: the server lost; reconnecting: the one about to be tried; back: the one connected
	Err     error         // lost: why; reconnecting: why the attempt before failed (nil for the first)
	Next    string        // lost: the server tried first ("" when there is one)
	Failed  string        // reconnecting: the server of the attempt before, whose failure Err is ("" when there is one)
	Servers int           // reconnecting: how many servers the session goes round
	Attempt int           // reconnecting: 1, 2, ...
	Wait    time.Duration // reconnecting: the wait before this attempt
	From    string        // back: the server whose connection was lost, another one when the session moved ("" when there is one)
	Down    time.Duration // back: how long it was down
	Resent  int           // back: messages without an answer, sent again
}

// ErrWrongPassword ends a session whose login is refused when it logs in
// again after a reconnect (the password was changed elsewhere).
var ErrWrongPassword = errors.New("login refused on reconnect: wrong password (was it changed?)")

// NotConnectedError is what a request gets while the session is down.
type NotConnectedError struct {
	Addr  string
	Since time.Duration
	Cause error
}

func (e *NotConnectedError) Error() string {
	return fmt.Sprintf("not connected to %s (lost %s ago: %s); reconnecting", e.Addr, e.Since.Round(time.Second), LostCause(e.Cause))
}

// GaveUpError ends a session that could not reach its server for GiveUp.
type GaveUpError struct {
	Addr string
	For  time.Duration
	Last error // the last attempt's failure
}

func (e *GaveUpError) Error() string {
	cause := LostCause(e.Last)
	var de *DialError
	if errors.As(e.Last, &de) {
		cause = de.Cause
		if de.Hint != "" {
			cause += " — " + de.Hint
		}
		if de.Addr != e.Addr { // one of several: which
			cause = "the last try, " + de.Addr + ": " + cause
		}
	}
	return fmt.Sprintf("gave up on %s after %s without a connection: %s", e.Addr, e.For, cause)
}

func (e *GaveUpError) Unwrap() error { return e.Last }

// NewSession makes a session; Connect dials it.
func NewSession(cfg SessionConfig) *Session {
	cfg.Options.defaults()
	s := &Session{cfg: cfg, clock: cfg.Clock, events: make(chan Event, 64), outbox: NewOutbox(),
		done: make(chan struct{}), up: make(chan struct{}), servers: splitServers(cfg.Addr)}
	if s.clock == nil {
		s.clock = realClock{}
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s
}

// Connect makes the first connection (logged in when the config has
// credentials); from then on the session heals by itself. Without retry
// it tries once (each server of a list once: an *UnreachableError when
// none could be reached); with retry it tries again after each failure
// that is not final, with backoff, calling retry (if not nil) with the
// failure and the wait, until ctx ends.
func (s *Session) Connect(ctx context.Context, retry func(err error, wait time.Duration)) error {
	plan := s.plan(-1)
	var errs []error
	for attempt := 0; ; attempt++ {
		round, k := attempt/len(plan), attempt%len(plan)
		cl, err := s.dial(ctx, s.servers[plan[k]])
		if err == nil {
			s.mu.Lock()
			s.server, s.started = cl.Server(), true
			s.mu.Unlock()
			s.install(cl, plan[k])
			go s.run(cl)
			return nil
		}
		if IsFinal(err) || ctx.Err() != nil {
			return err
		}
		if s.ctx.Err() != nil {
			return ErrClosed
		}
		if errs = append(errs, err); k < len(plan)-1 {
			if round == 0 && s.cfg.Skipped != nil {
				s.cfg.Skipped(ConnEvent{State: ConnReconnecting, Time: s.clock.Now(), Server: s.servers[plan[k+1]], Err: err,
					Failed: s.servers[plan[k]], Servers: len(s.servers), Attempt: k + 2})
			}
			continue // the next server, at once
		}
		if len(plan) > 1 {
			addrs := make([]string, len(plan))
			for j, i := range plan {
				addrs[j] = s.servers[i]
			}
			err = &UnreachableError{Addrs: addrs, Errs: errs}
		}
		errs = nil
		if retry == nil {
			return err
		}
		wait := s.cfg.Backoff.Delay(round)
		retry(err, wait)
		select {
		case <-s.clock.After(wait):
		case <-ctx.Done():
			return err
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// dial connects to addr and, with credentials, logs in.
func (s *Session) dial(ctx context.Context, addr string) (*Client, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	cl, err := Dial(ctx, addr, s.cfg.Options)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	user, pw := s.cfg.User, s.cfg.Password
	if s.user != "" {
		user, pw = s.user, s.pw
	}
	s.mu.Unlock()
	if user == "" {
		return cl, nil
	}
	me, _, err := s.loginWith(ctx, cl, user, pw)
	if err != nil {
		cl.Close()
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeLoginFailed {
			if s.Started() {
				return nil, ErrWrongPassword
			}
		}
		return nil, fmt.Errorf("login: %w", err)
	}
	s.mu.Lock()
	s.me = me
	s.mu.Unlock()
	go s.keepToken(cl)
	return cl, nil
}

// IsFinal tells errors that another attempt cannot fix, which end a
// session instead of starting (or going on with) a reconnect loop.
//
// It is the one place where a failure is classified. Final: a refused
// login, a server key that changed or is not trusted, a server that
// refuses STARTTLS or has bytes injected after it (someone in the middle
// may want the connection in clear), a BYE that must not be fought. A
// server that is not a qchat server is not final: the port may be taken
// for a moment.
func IsFinal(err error) bool {
	var pe *protocol.Error
	var bye *ByeError
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrWrongPassword), errors.Is(err, ErrServerKeyChanged), errors.Is(err, ErrServerKeyUnknown),
		errors.Is(err, ErrTLSRefused), errors.Is(err, ErrTLSInjected):
		return true
	case errors.As(err, &pe):
		return pe.Code >= 500 // a refused login (535) and the like
	case errors.As(err, &bye):
		return finalBye[bye.Reason]
	}
	return false
}

// finalBye are the BYE reasons after which a client must not reconnect by
// itself (PROTOCOL.md section 3): another login of the same account took
// over (reconnecting would throw it out in turn), the server gave up on
// our logins or locked them out, it threw us out for flooding (a new
// connection would start a new allowance), or we asked to leave.
var finalBye = map[string]bool{"takeover": true, "auth-failures": true, "prelogin-limit": true, "quit": true,
	"flood": true, "login-locked": true}

// run forwards the events of each connection and heals it when lost,
// until the session ends.
func (s *Session) run(cl *Client) {
	defer close(s.done)
	defer close(s.events)
	for cl != nil {
		for l := range cl.Events() {
			if IsAckable(l.Kind) && len(l.Args) > 0 {
				if id, ok := protocol.ParseID(l.Args[0]); ok {
					s.mu.Lock()
					s.fwd = append(s.fwd, fwdEvent{id, cl})
					s.mu.Unlock()
				}
			}
			select {
			case s.events <- Event{Line: l}:
			case <-s.ctx.Done(): // closing: drain, so that the read loop can end
			}
		}
		err := cl.Err()
		now := s.clock.Now()
		s.mu.Lock()
		s.cl, s.up, s.lostAt, s.lostWhy = nil, make(chan struct{}), now, err
		s.mu.Unlock()
		switch {
		case s.ctx.Err() != nil:
			s.end(ErrClosed)
			return
		case IsFinal(err):
			s.end(err)
			return
		}
		s.mu.Lock()
		lost := s.at
		s.mu.Unlock()
		plan := s.plan(lost)
		ev := ConnEvent{State: ConnLost, Time: now, Server: s.servers[lost], Err: err}
		if len(s.servers) > 1 {
			ev.Next = s.servers[plan[0]]
		}
		s.emit(ev)
		cl = s.reconnect(now, err, plan)
	}
}

// reconnect dials the servers of plan in turn until a connection is up
// (and returns it), the session gives up or ends (nil). It waits (backoff)
// before each round of the plan, not between its servers.
func (s *Session) reconnect(since time.Time, cause error, plan []int) *Client {
	var last error
	var failed, from string
	if len(s.servers) > 1 {
		from = s.servers[plan[len(plan)-1]]
	}
	for attempt := 0; ; attempt++ {
		round, k := attempt/len(plan), attempt%len(plan)
		var wait time.Duration
		if k == 0 {
			wait = s.cfg.Backoff.Delay(round)
		}
		if s.cfg.GiveUp > 0 {
			wait = max(0, min(wait, s.cfg.GiveUp-s.clock.Now().Sub(since)))
		}
		addr := s.servers[plan[k]]
		s.emit(ConnEvent{State: ConnReconnecting, Time: s.clock.Now(), Server: addr, Err: last, Failed: failed,
			Servers: len(s.servers), Attempt: attempt + 1, Wait: wait})
		var after <-chan time.Time
		if wait > 0 {
			after = s.clock.After(wait)
		} else {
			after = closedTime
		}
		select {
		case <-after:
		case <-s.ctx.Done():
			s.end(ErrClosed)
			return nil
		}
		cl, err := s.dial(s.ctx, addr)
		if err == nil {
			resent := s.install(cl, plan[k])
			now := s.clock.Now()
			s.emit(ConnEvent{State: ConnBack, Time: now, Server: addr, From: from, Down: now.Sub(since), Resent: resent})
			return cl
		}
		switch {
		case s.ctx.Err() != nil:
			s.end(ErrClosed)
			return nil
		case IsFinal(err):
			s.end(err)
			return nil
		case s.cfg.GiveUp > 0 && s.clock.Now().Sub(since) >= s.cfg.GiveUp && k == len(plan)-1: // each server tried once more
			if last = err; last == nil {
				last = cause
			}
			s.end(&GaveUpError{Addr: strings.Join(s.servers, ", "), For: s.cfg.GiveUp, Last: last})
			return nil
		}
		if last = err; len(s.servers) > 1 {
			failed = addr
		}
	}
}

// closedTime is a wait of nothing.
var closedTime = func() chan time.Time { c := make(chan time.Time); close(c); return c }()

// emit puts a connection event in the stream (dropped when closing).
func (s *Session) emit(ev ConnEvent) {
	select {
	case s.events <- Event{Conn: &ev}:
	case <-s.ctx.Done():
	}
}

// install makes cl, to the server of index at, the connection and sends
// what waits in the outbox. It returns how many messages were sent again.
func (s *Session) install(cl *Client, at int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cl, s.at = cl, at
	close(s.up)
	resent := 0
	for _, p := range s.outbox.Waiting() {
		if p.tries > 0 {
			resent++
		}
	}
	s.pumpLocked()
	return resent
}

// end records why the session ended (the first reason counts).
func (s *Session) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// Events is the stream of lines from the server and changes of the
// connection. It is closed when the session has ended; Err says why.
func (s *Session) Events() <-chan Event { return s.events }

// Done is closed when the session has ended for good.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended: nil while it runs, ErrClosed after
// Close or Quit.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Started reports whether the first connection was made.
func (s *Session) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Up reports whether the session is connected now.
func (s *Session) Up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cl != nil
}

// Addr is the address of the server in use, as given (while down: of
// the one lost).
func (s *Session) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers[s.at]
}

// Server is the server's name from its greeting.
func (s *Session) Server() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server
}

// Me is the logged-in user (zero before login).
func (s *Session) Me() User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.me
}

// Lost returns a channel that is closed once the connection of the moment
// is lost (closed already while down).
func (s *Session) Lost() <-chan struct{} {
	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	if cl == nil {
		return closedChan
	}
	return cl.Done()
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Outbox is the session's outbox.
func (s *Session) Outbox() *Outbox { return s.outbox }

// client returns the connection, waiting up to WaitUp for it to come back
// while the session is down.
func (s *Session) client(ctx context.Context, wait time.Duration) (*Client, error) {
	var timeout <-chan time.Time
	for {
		s.mu.Lock()
		cl, up, err, lostAt, why, addr := s.cl, s.up, s.err, s.lostAt, s.lostWhy, s.servers[s.at]
		s.mu.Unlock()
		switch {
		case cl != nil:
			return cl, nil
		case err != nil:
			return nil, err
		case wait <= 0:
			return nil, &NotConnectedError{Addr: addr, Since: s.clock.Now().Sub(lostAt), Cause: why}
		}
		if timeout == nil {
			timeout = s.clock.After(wait)
		}
		select {
		case <-up:
		case <-s.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			wait = 0
		}
	}
}

// Close ends the session at once.
func (s *Session) Close() error {
	s.stop()
	s.mu.Lock()
	cl, started := s.cl, s.started
	s.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	if started {
		<-s.done
	}
	return nil
}

// Quit logs out politely (QUIT) when connected, then ends the session.
func (s *Session) Quit(ctx context.Context) error {
	s.stop()
	s.flushAck()
	s.mu.Lock()
	cl, started := s.cl, s.started
	s.mu.Unlock()
	if cl != nil {
		cl.Quit(ctx)
	}
	if started {
		<-s.done
	}
	return nil
}

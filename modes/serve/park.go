package serve

import (
	"errors"
	"os"
	"time"
)

// Parking: an idle session has no goroutine. (The sweeper asks a session
// to park once it has read nothing for Config.parkAfter, a second.)
//
// A goroutine waiting in a read costs its stack (4 to 8 KiB once a session
// has done anything), more than the rest of an idle session together. So
// a session that has read nothing for parkAfter gives its goroutine up:
// its socket goes into the parker's set (one epoll instance, one goroutine
// for all: park_linux.go), its line reader gives back its buffer, and the
// goroutine returns. When the socket becomes readable (a line, a PONG, the
// peer's close) or the session is closed from elsewhere, a new goroutine
// takes the session up where it stopped (resumed). Nothing about the
// session's state changes: lines, limits, TLS and the outbox are where they
// were. Writes never need the goroutine (the outbox has its own).
//
// How a session comes to park: the sweeper asks one that has been silent
// for parkAfter (askPark: its read deadline is set in the past, which ends
// the read that waits, with os.ErrDeadlineExceeded); a session woken after
// a long park reads what came and parks at once when nothing more is
// there (the reader's noWait: errWouldBlock), without waiting to be asked.
// A session woken again soon after it parked is busy: it waits in its
// read as any other until the sweeper asks again. The hot path is not
// touched: a busy session never parks, and a read costs one atomic load
// more (the state, after each line).
//
// States (session.park): running (a goroutine reads), asked (the sweeper
// asked it to park), parked (no goroutine), resuming (a goroutine is
// being started), busy (the STARTTLS handshake: never asked). Moves
// between them: running→asked and busy↔running under s.mu (so that the
// sweeper never sets a deadline during a handshake); parked→resuming by
// compare-and-swap, by whoever wakes it first (the parker on readiness,
// the closer after closing the socket), who then starts its goroutine.
const (
	parkRunning int32 = iota
	parkAsked
	parkParked
	parkResuming
	parkBusy
)

// errWouldBlock is what a session's reader returns in noWait mode when
// there is nothing to read: park now.
var errWouldBlock = errors.New("nothing to read now")

// noWaiter is the reader under a parkable session's line reader (a socket
// reader, or TLS over one): in noWait mode a read that would wait returns
// errWouldBlock instead.
type noWaiter interface{ setNoWait(bool) }

// askPark (sweeper) asks the read loop of a session that has read nothing
// for parkAfter to park: its read deadline, set in the past, ends its
// read. Asked again at each sweep until it parks (a read loop that was
// between reads when first asked may have reset the deadline).
func (s *session) askPark(now int64) {
	if s.rc == nil || now-s.lastRead.Load() < int64(s.srv.cfg.parkAfter) {
		return
	}
	if st := s.park.Load(); st != parkRunning && st != parkAsked {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.park.Load(); st == parkRunning || st == parkAsked {
		s.park.Store(parkAsked)
		s.raw.SetReadDeadline(longAgo)
	}
}

// unasked (read loop) takes back the sweeper's ask after a line was read:
// the session is busy again.
func (s *session) unasked() {
	s.mu.Lock()
	if s.park.Load() == parkAsked {
		s.park.Store(parkRunning)
		s.raw.SetReadDeadline(time.Time{})
	}
	s.mu.Unlock()
}

// busy (read loop) keeps the sweeper away during the STARTTLS handshake,
// which sets deadlines of its own; done undoes it.
func (s *session) busy() (done func()) {
	s.mu.Lock()
	s.park.Store(parkBusy)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.park.Store(parkRunning)
		s.mu.Unlock()
	}
}

// parkOn (read loop) handles a read error that may be about parking.
// parked: the session is parked, and the goroutine must return at once
// without touching it. retry: it was about parking but the session could
// not park; read again (waiting as usual).
func (s *session) parkOn(err error) (parked, retry bool) {
	if !errors.Is(err, errWouldBlock) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, false
	}
	if s.held == nil && !s.closed.Load() && s.srv.parker.park(s) {
		return true, false
	}
	s.mu.Lock()
	s.park.Store(parkRunning)
	s.raw.SetReadDeadline(time.Time{})
	s.mu.Unlock()
	if s.nw != nil {
		s.nw.setNoWait(false)
	}
	return false, true
}

// unpark wakes a parked session: its goroutine starts again. Any
// goroutine may call it; the first after the session parked wins.
func (s *session) unpark() {
	if s.park.CompareAndSwap(parkParked, parkResuming) {
		s.srv.parker.forget(s)
		go s.resumed()
	}
}

// resumed is the goroutine of a session woken from its park.
func (s *session) resumed() {
	// Woken soon after it parked: it is busy, it waits in its reads.
	// Woken after a long park: it reads what came, and parks again as
	// soon as there is nothing more (a PONG, a line typed now and then).
	s.nw.setNoWait(time.Since(s.parkedAt) > s.srv.cfg.parkAfter)
	s.lastRead.Store(s.srv.now()) // something came: not to be asked again at once
	s.srv.wheel.schedule(s, time.Now().Add(s.srv.cfg.parkAfter).UnixNano())
	s.mu.Lock()
	s.park.Store(parkRunning)
	s.raw.SetReadDeadline(time.Time{})
	s.mu.Unlock()
	if !s.serve() {
		s.cleanup()
	}
}

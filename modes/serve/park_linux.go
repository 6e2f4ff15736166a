package serve

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parker watches the sockets of parked sessions (park.go) with one epoll
// instance and one goroutine: each socket is armed once per park
// (EPOLLONESHOT), and its first readiness (input, the peer's close, an
// error) starts the session's goroutine again. The Go runtime's own poller
// keeps the sockets too; a socket may be in both sets.
type parker struct {
	epfd int
	wake int // eventfd: written once to end loop
	gen  atomic.Uint32
	log  *slog.Logger

	mu   sync.Mutex
	byFD map[int32]*session // parked sessions by socket
	done chan struct{}
}

// newParker starts the parker; nil when the system will not give one
// (sessions then keep their goroutines).
func newParker(log *slog.Logger) *parker {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		log.Warn("no parking of idle sessions (epoll)", "err", err)
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1})
	}
	if err != nil {
		unix.Close(epfd)
		log.Warn("no parking of idle sessions (eventfd)", "err", err)
		return nil
	}
	p := &parker{epfd: epfd, wake: wake, log: log, byFD: make(map[int32]*session), done: make(chan struct{})}
	go p.loop()
	return p
}

// loop wakes the sessions whose sockets are ready, until stop.
func (p *parker) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			p.log.Error("parked sessions: epoll_wait failed; they wake only when closed", "err", err)
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd < 0 {
				return // stop
			}
			p.mu.Lock()
			s := p.byFD[ev.Fd]
			p.mu.Unlock()
			// The generation tells this park from an earlier one of a
			// socket whose number was reused: that event is stale.
			if s != nil && s.parkGen.Load() == uint32(ev.Pad) {
				s.unpark()
			}
		}
	}
}

// stop ends the loop, once no session can park any more (Shutdown).
func (p *parker) stop() {
	if p == nil {
		return
	}
	var one [8]byte
	one[0] = 1
	unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.wake)
	unix.Close(p.epfd)
}

// park (read loop) parks s: false when it cannot (no parker, the socket
// is closed), and the read loop goes on.
func (p *parker) park(s *session) bool {
	if p == nil || s.rc == nil {
		return false
	}
	s.rd.Idle()
	s.parkedAt = time.Now()
	gen := p.gen.Add(1)
	s.parkGen.Store(gen)
	fd := s.parkFD
	p.mu.Lock()
	p.byFD[fd] = s
	p.mu.Unlock()
	s.park.Store(parkParked)
	added := s.epollAdded
	s.epollAdded = true // before arming: once armed, another goroutine may own s
	var armErr error
	err := s.rc.Control(func(f uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd, Pad: int32(gen)}
		op := unix.EPOLL_CTL_MOD
		if !added {
			op = unix.EPOLL_CTL_ADD
		}
		armErr = unix.EpollCtl(p.epfd, op, int(f), &ev)
		switch {
		case errors.Is(armErr, unix.ENOENT):
			armErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(f), &ev)
		case errors.Is(armErr, unix.EEXIST):
			armErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(f), &ev)
		}
	})
	if err == nil && armErr == nil {
		return true
	}
	// Not armed (the socket was closed meanwhile): take s back, unless
	// its closer woke it already, and then its new goroutine owns it.
	if s.park.CompareAndSwap(parkParked, parkRunning) {
		s.epollAdded = added
		p.forget(s)
		return false
	}
	return true
}

// forget drops s from the parked sessions (it is being woken).
func (p *parker) forget(s *session) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.byFD[s.parkFD] == s {
		delete(p.byFD, s.parkFD)
	}
	p.mu.Unlock()
}

// parkable sets up what parking needs on a new session (its socket) and
// returns what its line reader reads: a reader of the socket that can be
// told not to wait. Without a parker or a socket (tests' pipes) it
// returns conn, and the session never parks.
func (s *session) parkable(conn net.Conn) io.Reader {
	sc, ok := conn.(syscall.Conn)
	if !ok || s.srv.parker == nil {
		return conn
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return conn
	}
	fd := int32(-1)
	if rc.Control(func(f uintptr) { fd = int32(f) }) != nil || fd < 0 {
		return conn
	}
	s.rc, s.parkFD = rc, fd
	r := &sockReader{rc: rc, conn: conn}
	r.fn = r.read
	s.nw = r
	return r
}

// sockReader is what a parkable session's line reader reads in clear
// text: the socket, read as net.Conn reads it (one read, and a wait in
// the runtime's poller when there is nothing). In noWait mode (a session
// woken from a long park) it reads once, what woke it, and then returns
// errWouldBlock without a system call: the session parks, and as the
// parker's epoll is level-triggered, bytes that came meanwhile wake it
// again at once. Read deadlines are the connection's. Used by the read
// loop only.
type sockReader struct {
	rc     syscall.RawConn
	conn   net.Conn
	noWait bool
	reads  int                   // in noWait mode: reads left before errWouldBlock
	fn     func(fd uintptr) bool // r.read, made once: no allocation per read

	p   []byte
	n   int
	err error
}

func (r *sockReader) setNoWait(on bool) { r.noWait, r.reads = on, 1 }

func (r *sockReader) SetReadDeadline(t time.Time) error { return r.conn.SetReadDeadline(t) }

func (r *sockReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.noWait {
		if r.reads == 0 {
			return 0, errWouldBlock
		}
		r.reads--
	}
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.fn)
	r.p = nil
	if err != nil {
		return 0, err // closed, or the deadline
	}
	return r.n, r.err
}

// read is one try of the socket: done (true), or wait for readiness.
func (r *sockReader) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			r.err = &net.OpError{Op: "read", Net: "tcp", Err: err}
		case n == 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}

package xfer

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// A link's bytes can move from one connection to another while it is in
// use: from the relay, taken because it came first, to a direct
// connection once one is up (PROTOCOL.md, "Moving a link"). Each
// direction moves on its own. The writer ends its side of the old
// connection after its last byte there (a half-close: TCP FIN, or TLS
// close_notify) and writes on the new one from then on; the reader reads
// the old connection to its end, then the new one. TCP delivers all that
// was written before the FIN, so no byte is lost or repeated, whatever
// the two connections' delays, and the layers above (a chat, a file
// transfer in the middle of a DATA) see one stream.
//
// movable is that stream: a net.Conn over the current connection of
// each direction.
type movable struct {
	wmu sync.Mutex // held by Write and by the move of the write side

	mu      sync.Mutex
	w       net.Conn // writes go here (swapped under wmu and mu)
	r       io.Reader
	rconn   net.Conn      // r reads this connection
	next    io.Reader     // reads continue here once r ends (nil: r's end is the end)
	nconn   net.Conn      // next reads this connection
	moving  chan struct{} // a move under way: a reader at r's end waits until it is closed
	old     net.Conn      // the connection moved from, until both directions left it
	oldLeft int
	rdl     time.Time
	wdl     time.Time
	closed  bool
	done    chan struct{} // closed by Close
	onClose func()        // set before use: called by Close
}

// newMovable makes a stream over c; r reads c (a reader that may hold
// bytes of c read already).
func newMovable(c net.Conn, r io.Reader) *movable {
	return &movable{w: c, r: r, rconn: c, done: make(chan struct{})}
}

func (m *movable) Write(p []byte) (int, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	w := m.w
	m.mu.Unlock()
	return w.Write(p)
}

func (m *movable) Read(p []byte) (int, error) {
	for {
		m.mu.Lock()
		r := m.r
		m.mu.Unlock()
		n, err := r.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			if errors.Is(err, io.EOF) {
				err = nil // the next read finds the end, and maybe the next connection
			}
			return n, err
		}
		m.mu.Lock()
		if m.next == nil && m.moving != nil {
			wait := m.moving
			m.mu.Unlock()
			<-wait // the mover reads the peer's MOVED, or gives up
			m.mu.Lock()
		}
		if m.next == nil || m.closed {
			m.mu.Unlock()
			return 0, io.EOF
		}
		m.r, m.rconn, m.next, m.nconn = m.next, m.nconn, nil, nil
		m.rconn.SetReadDeadline(m.rdl)
		m.leftOld()
		m.mu.Unlock()
	}
}

// beginMove marks a move under way: a reader that reaches the end of the
// current connection waits for moveReads or endMove instead of ending.
func (m *movable) beginMove() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.moving == nil {
		m.moving = make(chan struct{})
	}
}

// endMove ends the wait of beginMove: after moveReads the reader goes on
// on the new connection, without it the end of the old one is the end.
func (m *movable) endMove() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.moving != nil {
		close(m.moving)
		m.moving = nil
	}
}

// moveReads makes reads go on over c (through r) once the current
// connection ends.
func (m *movable) moveReads(c net.Conn, r io.Reader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return net.ErrClosed
	}
	m.next, m.nconn, m.old = r, c, m.rconn
	return nil
}

// moveWrites ends the write side of the current connection after what
// was written so far and makes later writes go to c. It waits for a write
// under way.
func (m *movable) moveWrites(c net.Conn) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return net.ErrClosed
	}
	old := m.w
	m.mu.Unlock()
	cw, ok := old.(interface{ CloseWrite() error })
	if !ok {
		return errors.New("the connection cannot be half-closed")
	}
	if err := cw.CloseWrite(); err != nil {
		return err
	}
	m.mu.Lock()
	m.w = c
	c.SetWriteDeadline(m.wdl)
	m.leftOld()
	m.mu.Unlock()
	return nil
}

// leftOld counts one direction off the old connection; the second closes
// it. Called with mu held.
func (m *movable) leftOld() {
	m.oldLeft++
	if m.oldLeft == 2 && m.old != nil {
		m.old.Close()
	}
}

func (m *movable) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return net.ErrClosed
	}
	m.closed = true
	close(m.done)
	conns := []net.Conn{m.w, m.rconn, m.nconn, m.old}
	if m.moving != nil {
		close(m.moving)
		m.moving = nil
	}
	m.mu.Unlock()
	if m.onClose != nil {
		m.onClose()
	}
	err := conns[0].Close()
	for i, c := range conns[1:] {
		if c != nil && !slices.Contains(conns[:i+1], c) {
			c.Close()
		}
	}
	return err
}

func (m *movable) LocalAddr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w.LocalAddr()
}

func (m *movable) RemoteAddr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w.RemoteAddr()
}

func (m *movable) SetDeadline(t time.Time) error {
	m.SetReadDeadline(t)
	return m.SetWriteDeadline(t)
}

func (m *movable) SetReadDeadline(t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rdl = t
	return m.rconn.SetReadDeadline(t)
}

func (m *movable) SetWriteDeadline(t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wdl = t
	return m.w.SetWriteDeadline(t)
}

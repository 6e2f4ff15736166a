package xfer

import (
	"bufio"
	"time"
)

// Moving a link in use to a direct connection (PROTOCOL.md, "Moving a
// link"). The relay carries a link when it comes first; the direct
// attempts go on, and when one is up (HELLO and TLS done) the offerer says
// on it
//
//	MOVE
//
// and the other side, once it will read the link's stream on from there,
// answers
//
//	MOVED
//
// and half-closes its side of the old connection after its last byte
// there; from then on it writes on the new one. The offerer, having read
// MOVED, does the same. Each side reads the old connection to its end,
// then the new one (movable). Nothing is lost or repeated, and the layer
// above (a chat, a file in the middle of its DATA) sees one stream.

// moveWait bounds the MOVE handshake.
const moveWait = 10 * time.Second

// makeMovable puts the link's stream on a movable, so that it can move,
// and opens Moves. Called before anyone else uses the link, with nothing
// buffered for writing.
func (l *Link) makeMovable() {
	l.mv = newMovable(l.conn, l.r)
	l.conn = l.mv
	l.r = bufio.NewReaderSize(l.mv, 64<<10)
	l.w = bufio.NewWriterSize(l.mv, 64<<10)
	l.moves = make(chan Route, 1)
}

// moveTo moves the link to d (the offerer's side): MOVE, then MOVED,
// then both directions. On an error the link stays where it was, unless
// the error came after the peer moved (its old connection then ends and
// the link with it).
func (l *Link) moveTo(d *Link) error {
	m := l.mv
	m.beginMove()
	defer m.endMove()
	// A link closed meanwhile (its transfer is over) moves nowhere: the
	// wait for MOVED ends with it.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-m.done:
			d.Close()
		case <-stop:
		}
	}()
	d.SetIdle(moveWait)
	if err := d.send("MOVE"); err != nil {
		return err
	}
	if _, _, err := d.expect("MOVED"); err != nil {
		return err
	}
	if err := m.moveReads(d.conn, d.r); err != nil {
		return err
	}
	if err := m.moveWrites(d.conn); err != nil {
		return err
	}
	l.arrived(d)
	return nil
}

// acceptMove moves the link to d, on which MOVE was read (the other
// side).
func (l *Link) acceptMove(d *Link) error {
	d.SetIdle(moveWait)
	if err := l.mv.moveReads(d.conn, d.r); err != nil {
		return err
	}
	if err := d.send("MOVED"); err != nil {
		return err
	}
	if err := l.mv.moveWrites(d.conn); err != nil {
		return err
	}
	l.arrived(d)
	return nil
}

// arrived notes the new route and tells Moves.
func (l *Link) arrived(d *Link) {
	r := Route{d.Path, d.Via, d.How}
	l.routeMu.Lock()
	l.moved = &r
	l.routeMu.Unlock()
	l.moves <- r
	l.noMoreMoves()
}

// noMoreMoves closes Moves: the link stays where it is.
func (l *Link) noMoreMoves() {
	l.routeMu.Lock()
	defer l.routeMu.Unlock()
	if l.moves != nil && !l.movesDone {
		l.movesDone = true
		close(l.moves)
	}
}

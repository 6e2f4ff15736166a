package xfer

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Host is the server's own side of the links it takes part in: offline
// files, which a client sends to the server or takes from it over the
// same link as a file to a peer (HELLO, TLS 1.3 with both link keys
// pinned, USE, then the file link), so that the manifest, resume and
// verification are those of a direct file. The client comes through the
// relay's door (RELAY <ticket> <secret>) and finds the server itself at
// the other end; the server's link key, made at start, travels to the
// client with the ticket over its logged-in (TLS) session, as a peer's
// does.
//
// Safe for concurrent use.
type Host struct {
	p *Peer // no listener: its link key and handshakes only
}

// HostID is the user id the server's side of a link gives in HELLO, and
// the Peer of a client's ticket for a link to the server.
const HostID = 0

// NewHost makes the server's link key for this run.
func NewHost() (*Host, error) {
	id, err := newIdentity()
	if err != nil {
		return nil, err
	}
	return &Host{p: &Peer{id: id, helloWait: 10 * time.Second, expect: make(map[string]*expected)}}, nil
}

// Fingerprint is the host's link key ("SHA256:..."), for the client's
// ticket.
func (h *Host) Fingerprint() string { return h.p.id.fp }

// Link runs the host's side of a link on conn, a connection that came to
// RELAY with a ticket of the host's (pending: what was read of it past
// the RELAY line): HELLO both ways (the client's must name t.Peer), TLS
// with the client's key t.PeerKey pinned (the host is the TLS client when
// it offers, t.Offerer), and USE, said by the offerer and awaited by the
// other. idle is the link's idle timeout once up. Link blocks until the
// link is up or failed; on failure conn is closed.
func (h *Host) Link(ctx context.Context, conn net.Conn, pending []byte, t Ticket, idle time.Duration) (*Link, error) {
	if len(pending) > 0 {
		conn = &prefixConn{Conn: conn, first: pending}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fail := func(err error) (*Link, error) {
		conn.Close()
		return nil, err
	}
	l, err := h.p.hello(newLink(conn, idle), t)
	if err != nil {
		return fail(err)
	}
	l.Path, l.Via, l.How = "relay", "the server itself", HowRelayed
	s, err := h.p.secure(ctx, l, t, h.p.helloWait)
	if err != nil {
		return fail(err)
	}
	if t.Offerer {
		err = s.send("USE")
	} else {
		_, _, err = s.expect("USE")
	}
	if err != nil {
		return fail(fmt.Errorf("waiting for the link to be taken: %w", err))
	}
	s.SetIdle(idle)
	return s, nil
}

// prefixConn reads first bytes read already, then the connection.
type prefixConn struct {
	net.Conn
	first []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(b, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

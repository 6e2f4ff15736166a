package serve

import (
	"net"
	"time"
)

// Both sides of an accepted offer start dialing each other the moment
// their ticket arrives (PROTOCOL.md, "Making the link"). For their SYNs
// to cross in flight through NATs that answer a stray SYN with RST, the
// tickets must arrive at the same moment: the reply to the nearer side
// waits for the difference of the one-way delays, each half the
// connection's round trip as the kernel measured it (libp2p's DCUtR does
// the same through its relay).

// maxLead bounds the wait: a difference beyond it is a bad measurement,
// or peers so far apart that a few hundred milliseconds do not matter.
const maxLead = 250 * time.Millisecond

// sendTogether calls toOfferer and toAcceptor (each sends its side's
// ticket) so that both arrive at once. It runs in the acceptor's read
// loop: when the acceptor is the nearer side, its reply waits there, so
// that it stays in order with the acceptor's later requests; the
// offerer's reply (to CHAT or FILE, which are answered out of order
// anyway) waits on a timer.
func (srv *Server) sendTogether(offerer, acceptor *session, toOfferer, toAcceptor func()) {
	lead := (srv.cfg.RTT(offerer.conn) - srv.cfg.RTT(acceptor.conn)) / 2
	lead = min(max(lead, -maxLead), maxLead)
	switch {
	case lead > 0: // the offerer is further: its ticket goes first
		toOfferer()
		time.Sleep(lead)
		toAcceptor()
	case lead < 0:
		toAcceptor()
		time.AfterFunc(-lead, toOfferer)
	default:
		toOfferer()
		toAcceptor()
	}
}

// connRTT is a connection's round-trip time as the kernel measured it:
// the smallest seen recently (delayed ACKs only ever add to it); 0 when
// unknown.
func connRTT(c net.Conn) time.Duration {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok { // under TLS
		c = u.NetConn()
	}
	return tcpRTT(c)
}

package serve

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// Direct links between users on different nodes of a cluster
// (clustered.go). The offerer's node keeps the offer as always, with the
// target's node in toNode and no target session; the target's node keeps
// a mirror of it (fromNode set, no offerer session) and tells its user.
// The two nodes say to each other, as JSON over NATS (cluster.SendOffer),
// what one server would have done between two sessions: the offer, its
// answer (with the ticket's keys, endpoints and the offerer's relay
// secret), a cancel, a side gone.
//
// The relay: each side sends RELAY to its own node, as it always does. The
// target's node is where the two meet: the offerer's node checks the
// offerer's secret, then dials the target's node's client port (the
// address its heartbeats carry), says RELAY with the same ticket and
// secret there, and copies bytes both ways between its client and that
// connection (proxyRelay). The bytes are the peers' TLS: neither node can
// read them. No relay bytes cross NATS.

// offerMsg is what nodes say to each other of an offer.
type offerMsg struct {
	Kind    string `json:"kind"` // offer, accepted, refused, cancel, gone
	Ticket  string `json:"ticket"`
	From    int64  `json:"from,omitempty"` // the offerer
	To      int64  `json:"to,omitempty"`   // the target
	Purpose string `json:"purpose,omitempty"`
	Summary string `json:"summary,omitempty"`
	Key     string `json:"key,omitempty"`    // the sending side's link key
	Remote  string `json:"remote,omitempty"` // the sending side's endpoint as its node sees it
	Eps     string `json:"eps,omitempty"`    // its further endpoints, " a b ..."
	LinkBy  int64  `json:"link_by,omitempty"`
	Secret  string `json:"secret,omitempty"` // accepted: the offerer's relay secret
}

var errOfferMsg = errors.New("offer message")

// check refuses a message that no node of ours would send.
func (m *offerMsg) check() error {
	if len(m.Ticket) != 26 || strings.Trim(m.Ticket, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return fmt.Errorf("%w: bad ticket", errOfferMsg)
	}
	addrOK := func(a string) bool { _, p, err := net.SplitHostPort(a); return err == nil && p != "" && len(a) < 256 }
	switch m.Kind {
	case "offer":
		if m.From <= 0 || m.To <= 0 || m.Purpose != "chat" && m.Purpose != "file" || !protocol.ValidLinkKey(m.Key) || !addrOK(m.Remote) ||
			protocol.CheckText(m.Summary, 400) != nil || protocol.Escape(m.Summary) != m.Summary {
			return fmt.Errorf("%w: bad offer", errOfferMsg)
		}
	case "accepted":
		if !protocol.ValidLinkKey(m.Key) || !addrOK(m.Remote) || m.LinkBy <= 0 || len(m.Secret) != 26 {
			return fmt.Errorf("%w: bad answer", errOfferMsg)
		}
	case "refused", "cancel", "gone":
	default:
		return fmt.Errorf("%w: kind %q", errOfferMsg, protocol.Clip(m.Kind, 20))
	}
	for i, ep := range strings.Fields(m.Eps) {
		if _, port := peerPortToken(ep); !addrOK(ep) && !(i == 0 && port) {
			return fmt.Errorf("%w: bad endpoint", errOfferMsg)
		}
	}
	return nil
}

// sendOffer tells node of an offer; nothing waits for it.
func (srv *Server) sendOffer(node string, m offerMsg) {
	b, err := json.Marshal(m)
	if err == nil {
		err = srv.cl.SendOffer(node, b)
	}
	if err != nil {
		srv.log.Warn("cluster: offer message", "node", node, "kind", m.Kind, "err", err)
	}
}

// clusterOffer takes what node says of an offer (cluster's goroutine).
func (srv *Server) clusterOffer(node string, data []byte) {
	var m offerMsg
	if err := json.Unmarshal(data, &m); err != nil {
		srv.log.Warn("cluster: bad offer message", "node", node, "err", err)
		return
	}
	if err := m.check(); err != nil {
		srv.log.Warn("cluster: bad offer message", "node", node, "err", err)
		return
	}
	of := srv.offers
	if m.Kind == "offer" {
		srv.mirrorOffer(node, &m)
		return
	}
	of.mu.Lock()
	o := of.byTicket[m.Ticket]
	if o == nil || o.toNode != node && o.fromNode != node {
		of.mu.Unlock()
		return // over already
	}
	switch {
	case m.Kind == "accepted" && o.toNode == node && o.state == offerPending:
		o.state = offerAccepted
		o.linkBy = time.UnixMilli(m.LinkBy)
		o.keys[sideTo] = m.Key
		o.secrets[sideFrom] = m.Secret
		of.mu.Unlock()
		o.from.replyf(o.tag, protocol.CodeTicket, "%s %d %s %s %s %s%s", o.ticket, o.toID, m.Remote,
			protocol.FormatTime(o.linkBy), m.Key, m.Secret, m.Eps)
	case m.Kind == "refused" && o.toNode == node && o.state == offerPending:
		delete(of.byTicket, m.Ticket)
		of.mu.Unlock()
		o.from.replyf(o.tag, protocol.CodeRefused, "%d refused the %s", o.toID, o.purpose)
	case m.Kind == "gone" && o.toNode == node && o.state == offerPending:
		delete(of.byTicket, m.Ticket)
		of.mu.Unlock()
		o.from.replyf(o.tag, protocol.CodeOffline, "%d went offline before answering", o.toID)
	case m.Kind == "cancel" && o.fromNode == node && o.state == offerPending:
		delete(of.byTicket, m.Ticket)
		of.mu.Unlock()
		if o.to != nil {
			o.to.send(protocol.AppendEvent(nil, "CANCEL", o.ticket, "gone"))
		}
	default:
		of.mu.Unlock()
	}
}

// mirrorOffer takes an offer from a user on node to a user here: the
// target is told as of a local offer.
func (srv *Server) mirrorOffer(node string, m *offerMsg) {
	to := srv.hub.session(m.To)
	a := srv.dir.byId(m.From)
	if to == nil || a == nil {
		srv.sendOffer(node, offerMsg{Kind: "gone", Ticket: m.Ticket})
		return
	}
	o := &offer{ticket: m.Ticket, purpose: m.Purpose, to: to, fromID: m.From, toID: m.To, summary: m.Summary,
		answerBy: time.Now().Add(srv.cfg.OfferTimeout), fromNode: node, fromNick: srv.dir.nickOf(m.From),
		fromRemote: m.Remote, fromEps: m.Eps}
	o.keys[sideFrom] = m.Key
	of := srv.offers
	of.mu.Lock()
	if of.byTicket[m.Ticket] != nil {
		of.mu.Unlock()
		return
	}
	of.byTicket[m.Ticket] = o
	of.mu.Unlock()
	args := []string{o.ticket, idStr(m.From), o.fromNick, protocol.FormatTime(time.Now()), o.purpose}
	if o.summary != "" {
		args = append(args, o.summary)
	}
	to.send(protocol.AppendEvent(nil, "OFFER", args...))
	srv.log.Info("offer from another node", "node", node, "user", m.From, "to", m.To, "purpose", m.Purpose)
}

// proxyRelay carries the offerer's side of a relayed link to the target's
// node, where the two sides meet: it says RELAY there with the offerer's
// ticket and secret and copies bytes both ways, adding nothing (the "200
// relay open", or a refusal, comes from that node).
func (srv *Server) proxyRelay(me *relayHalf, node, ticket, secret string, linkBy time.Time) {
	defer srv.relays.wg.Done()
	srv.relays.add(me.conn)
	defer srv.relays.remove(me.conn)
	addr := srv.cl.Addr(node)
	if addr == "" {
		me.end("454 the node of the other side is gone")
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		me.end("454 cannot reach the node of the other side")
		srv.log.Warn("relay: dial node", "node", node, "addr", addr, "err", err)
		return
	}
	srv.relays.add(conn)
	defer srv.relays.remove(conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(conn, 1024)
	greeting, err := br.ReadSlice('\n')
	if err != nil || !strings.HasPrefix(string(greeting), "220 ") {
		conn.Close()
		me.end("454 the node of the other side does not answer")
		srv.log.Warn("relay: node greeting", "node", node, "err", err)
		return
	}
	if _, err := fmt.Fprintf(conn, "RELAY %s %s\n", ticket, secret); err != nil {
		conn.Close()
		me.end("454 cannot reach the node of the other side")
		return
	}
	conn.SetDeadline(time.Time{})
	other := &relayHalf{conn: conn, pending: append([]byte(nil), make([]byte, br.Buffered())...)}
	br.Read(other.pending) // what came after the greeting (nothing, or that node's answer)
	srv.log.Info("relay through node", "node", node, "addr", addr)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	idle := max(srv.cfg.RelayIdle, time.Until(linkBy))
	done := make(chan bool, 2)
	go func() { _, ok := copyIdle(conn, me.conn, me.pending, idle, &last); done <- ok }()
	go func() { _, ok := copyIdle(me.conn, conn, other.pending, idle, &last); done <- ok }()
	if clean := <-done; !clean {
		me.conn.Close()
		conn.Close()
	}
	<-done
	me.conn.Close()
	conn.Close()
}

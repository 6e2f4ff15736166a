package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"qchat/protocol"
	"qchat/xfer"
)

// Requests through a Session: each goes to the connection of the moment,
// waiting (up to SessionConfig.WaitUp) for one while the session is down.
// Messages go through the outbox, so that a lost answer never makes one
// arrive twice; read-only requests are asked again once when the
// connection is lost before their answer; the others fail then, saying
// that it is not known whether they were done.

// maxInFlight bounds the messages written to a connection without an
// answer yet (the server remembers 64 client ids per sender).
const maxInFlight = 32

// resendHorizon is how old an unanswered message may be and still be
// sent again: the server recognises stored messages' ids for a day.
const resendHorizon = 23 * time.Hour

// Submit queues a message to to (an id, nickname or "#group") in the
// outbox and sends it when connected; the Pending says when the server
// answered. Text that can never be sent is refused at once.
func (s *Session) Submit(to, text string) (*Pending, error) {
	if err := protocol.CheckText(text, protocol.MaxText); err != nil {
		return nil, err
	}
	if _, err := protocol.AppendCommand(nil, "", "MSG", to, text); err != nil {
		return nil, err
	}
	p := s.outbox.Add(to, text, s.clock.Now())
	s.mu.Lock()
	s.pumpLocked()
	s.mu.Unlock()
	return p, nil
}

// pumpLocked writes the outbox's messages that are not on the current
// connection yet, oldest first, up to maxInFlight: resend=<cid> for those
// written before (their answer was lost with a connection), id=<cid>
// otherwise.
func (s *Session) pumpLocked() {
	cl := s.cl
	if cl == nil {
		return
	}
	waiting := s.outbox.Waiting()
	inFlight := 0
	for _, p := range waiting {
		if p.conn == cl {
			inFlight++
		}
	}
	now := s.clock.Now()
	for _, p := range waiting {
		if inFlight >= maxInFlight {
			return
		}
		if p.conn == cl {
			continue
		}
		if p.tries > 0 && now.Sub(p.Queued) > resendHorizon {
			s.outbox.Finish(p, Sent{}, errors.New("no answer for a day: it may or may not have arrived"))
			continue
		}
		cid := p.CID
		if !cl.cids {
			cid = "" // an older server: a resend may then arrive twice
		}
		if err := cl.goID("MSG", cid, p.tries > 0, []string{p.To, p.Text}, s.answered(cl, p)); err != nil {
			return // the connection is going: the next one sends it
		}
		p.conn = cl
		p.tries++
		inFlight++
	}
}

// answered handles the server's answer to p written on cl (from cl's read
// loop: it must not block).
func (s *Session) answered(cl *Client, p *Pending) func(Reply, error) {
	return func(r Reply, err error) {
		var pe *protocol.Error
		if err != nil && !errors.As(err, &pe) {
			return // lost with the connection: sent again on the next one
		}
		var sent Sent
		if err == nil {
			sent, err = parseSent(r.Text)
		}
		s.outbox.Finish(p, sent, err)
		s.mu.Lock()
		if s.cl == cl {
			s.pumpLocked()
		}
		s.mu.Unlock()
	}
}

// Ack tells the server that messages were shown or saved, on the
// connection of the moment. While down it does nothing: the server sends
// what was not acknowledged again after the reconnect, and the receiver
// drops it by id.
//
// Events are acknowledged cumulatively (ACK ..<msgid>) when they came on
// the connection of the moment and the server takes it: the reader
// handles them in order, so everything up to the one it acknowledges was
// handled too. The ACK waits while more durable events of the connection
// are on their way to the reader (a burst is acknowledged by one line)
// and goes as soon as none is, or the reader has nothing more queued, or
// the session quits. Events of an earlier connection are acknowledged by
// id.
func (s *Session) Ack(ids ...int64) error {
	s.mu.Lock()
	cl := s.cl
	if cl == nil {
		s.mu.Unlock()
		return nil
	}
	var byID []int64
	for _, id := range ids {
		if via := s.forwardedLocked(id); via == cl && cl.ackTo {
			s.ackHi, s.ackCl = max(s.ackHi, id), cl
		} else {
			byID = append(byID, id)
		}
	}
	hi, acl := s.ackHi, s.ackCl
	send := acl != nil && (len(s.fwd) == 0 || len(s.events) == 0)
	if send || acl != cl {
		s.ackHi, s.ackCl = 0, nil
	}
	s.mu.Unlock()
	var err error
	if len(byID) > 0 {
		err = cl.Ack(byID...)
	}
	if send && acl == cl {
		err = errors.Join(err, cl.AckUpTo(hi))
	}
	return err
}

// forwardedLocked finds id among the forwarded events and forgets it and
// those before it (handled, whether acknowledged or not); it returns the
// connection it came on, nil when it was not forwarded by the session.
func (s *Session) forwardedLocked(id int64) *Client {
	for i, f := range s.fwd {
		if f.id == id {
			clear(s.fwd[:i+1])
			s.fwd = s.fwd[i+1:]
			if len(s.fwd) == 0 {
				s.fwd = nil
			}
			return f.cl
		}
	}
	return nil
}

// flushAck sends the cumulative ACK held back, if any.
func (s *Session) flushAck() {
	s.mu.Lock()
	hi, acl, cl := s.ackHi, s.ackCl, s.cl
	s.ackHi, s.ackCl = 0, nil
	s.mu.Unlock()
	if acl != nil && acl == cl {
		acl.AckUpTo(hi)
	}
}

// readOnly are the verbs asked again when the connection is lost before
// their answer: asking twice changes nothing.
var readOnly = map[string]bool{"LIST": true, "INFO": true, "FIND": true, "FRIENDS": true, "PENDING": true,
	"MEMBERS": true, "GROUPS": true, "PING": true, "HELP": true}

// with runs fn on the connection; a read-only verb is run again once on
// the next connection when this one was lost before fn's answer.
func (s *Session) with(ctx context.Context, verb string, fn func(*Client) error) error {
	for try := 0; ; try++ {
		cl, err := s.client(ctx, s.cfg.WaitUp)
		if err != nil {
			return err
		}
		err = fn(cl)
		var pe *protocol.Error
		if err == nil || errors.As(err, &pe) || cl.Err() == nil || ctx.Err() != nil {
			return err
		}
		if !readOnly[verb] || try > 0 {
			return fmt.Errorf("connection to %s lost before the answer (%s): it may or may not have been done", cl.addr, LostCause(cl.Err()))
		}
	}
}

// Do sends a request and waits for its reply (see Client.Do).
func (s *Session) Do(ctx context.Context, verb string, args ...string) (Reply, error) {
	var r Reply
	err := s.with(ctx, verb, func(cl *Client) (err error) {
		r, err = cl.Do(ctx, verb, args...)
		return err
	})
	return r, err
}

// Login logs in as user (an id or a nickname). The session keeps user and
// password in memory to log in again after a reconnect.
func (s *Session) Login(ctx context.Context, user, password string) (User, error) {
	var me User
	var logged *Client
	err := s.with(ctx, "USER", func(cl *Client) (err error) {
		me, err = cl.Login(ctx, user, password)
		logged = cl
		return err
	})
	if err == nil {
		s.mu.Lock()
		s.user, s.pw, s.me, s.tokens = user, password, me, nil
		s.mu.Unlock()
		go s.keepToken(logged)
	}
	return me, err
}

// Register creates an account (see Client.Register).
func (s *Session) Register(ctx context.Context, nick, password string) (User, error) {
	var u User
	err := s.with(ctx, "REG", func(cl *Client) (err error) {
		u, err = cl.Register(ctx, nick, password)
		return err
	})
	return u, err
}

// Rename notes my new nickname after SET nick.
func (s *Session) Rename(nick string) {
	s.mu.Lock()
	s.me.Nick = nick
	cl := s.cl
	s.mu.Unlock()
	if cl != nil {
		cl.Rename(nick)
	}
}

// List returns who is online.
func (s *Session) List(ctx context.Context) ([]Presence, error) { return s.Users(ctx, "LIST") }

// Users runs a request whose answer is a list of users (see Client.Users).
func (s *Session) Users(ctx context.Context, verb string, args ...string) ([]Presence, error) {
	var out []Presence
	err := s.with(ctx, verb, func(cl *Client) (err error) {
		out, err = cl.Users(ctx, verb, args...)
		return err
	})
	return out, err
}

// Info returns a user's public profile (see Client.Info).
func (s *Session) Info(ctx context.Context, who string) ([][2]string, error) {
	var out [][2]string
	err := s.with(ctx, "INFO", func(cl *Client) (err error) {
		out, err = cl.Info(ctx, who)
		return err
	})
	return out, err
}

// Answer accepts or refuses an offer (see Client.Answer).
func (s *Session) Answer(ctx context.Context, accept bool, o OfferEvent) (xfer.Ticket, error) {
	var t xfer.Ticket
	err := s.with(ctx, "ACCEPT", func(cl *Client) (err error) {
		t, err = cl.Answer(ctx, accept, o)
		return err
	})
	return t, err
}

// Offer asks for a direct link (see Client.Offer).
func (s *Session) Offer(ctx context.Context, who, purpose string, o *xfer.Offer) (xfer.Ticket, error) {
	var t xfer.Ticket
	err := s.with(ctx, "CHAT", func(cl *Client) (err error) {
		t, err = cl.Offer(ctx, who, purpose, o)
		return err
	})
	return t, err
}

// offer is one try of SendFiles: it waits for the connection to be back
// as long as ctx lets it, since a transfer runs in the background.
func (s *Session) offer(ctx context.Context, purpose, verb string, args ...string) (xfer.Ticket, error) {
	cl, err := s.client(ctx, offerWait)
	if err != nil {
		return xfer.Ticket{}, err
	}
	return cl.offer(ctx, purpose, verb, args...)
}

// gone reports whether the session has ended for good.
func (s *Session) gone() bool { return s.Err() != nil }

// Peer is the session's peer listener (nil without one).
func (s *Session) Peer() *xfer.Peer { return s.cfg.Options.Peer }

// Link connects the peer link of a ticket (see Client.Link); it needs no
// connection to the server unless it goes through the relay.
func (s *Session) Link(ctx context.Context, t xfer.Ticket, opts xfer.ConnectOptions) (*xfer.Link, error) {
	if s.cfg.Options.Peer == nil {
		return nil, errors.New("no peer listener")
	}
	opts.Server = s.Addr() // the relay of the node in use
	opts.NAT = s.NAT()
	return s.cfg.Options.Peer.Connect(ctx, t, opts)
}

// NAT is the kind of NAT this client is behind, as the current
// connection learned it (Client.NAT); xfer.NATUnknown while down.
func (s *Session) NAT() string {
	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	if cl == nil {
		return xfer.NATUnknown
	}
	return cl.NAT()
}

// SendFiles offers o to who and sends it, retrying with resume (see
// Client.SendFiles); a try that finds the server gone waits for it to be
// back, so a transfer goes on after a server restart.
func (s *Session) SendFiles(ctx context.Context, who string, o *xfer.Offer, opts TransferOptions, m xfer.Meter) (xfer.SendResult, error) {
	return sendFiles(ctx, s, who, o, opts, m)
}

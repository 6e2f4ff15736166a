package client

import "qchat/history"

// Recorder decides what to do with an incoming message so that it is
// shown exactly once and acknowledged only once it is shown and saved.
// With a history log it survives restarts (the log knows what was shown);
// without one it remembers ids in memory.
type Recorder struct {
	Hist *history.Log // may be nil
	seen map[int64]struct{}
}

// Acker acknowledges messages: a Client or a Session.
type Acker interface {
	Ack(ids ...int64) error
}

// Receive handles a durable event (MSG, GMSG, REQUEST, NOTICE): a
// duplicate is acknowledged and dropped; a new one is shown (show),
// appended to history when it is a message, then acknowledged. It reports
// whether it was new. Requests and notices are remembered in memory only:
// after a crash one may show twice, which is harmless.
func (r *Recorder) Receive(c Acker, m Message, show func(Message)) (bool, error) {
	conv := m.Conversation()
	dup := false
	if r.Hist != nil && m.IsChat() {
		has, err := r.Hist.Has(conv, m.ID)
		if err != nil {
			return false, err
		}
		dup = has
	} else {
		if r.seen == nil {
			r.seen = make(map[int64]struct{})
		}
		_, dup = r.seen[m.ID]
	}
	if dup {
		return false, c.Ack(m.ID)
	}
	show(m)
	var err error
	if r.Hist != nil && m.IsChat() {
		_, err = r.Hist.Append(conv, history.Record{Time: m.Time, ID: m.ID, From: m.From, Nick: m.FromNick, Text: m.Text})
	} else {
		r.seen[m.ID] = struct{}{}
	}
	// Shown is enough to acknowledge: a history write failure is reported,
	// it must not make the server send the message again.
	if ackErr := c.Ack(m.ID); ackErr != nil {
		return true, ackErr
	}
	return true, err
}

// RecordSent appends a message I sent to the history of its conversation.
func (r *Recorder) RecordSent(me User, s Sent, text string) error {
	if r.Hist == nil {
		return nil
	}
	_, err := r.Hist.Append(s.Conversation(), history.Record{Time: s.Time, ID: s.ID, Out: true, From: me.ID, Nick: me.Nick, Text: text})
	return err
}

package client

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Outbox keeps the messages that have no answer from the server yet, in
// the order they were written, each with a client id of its own
// (PROTOCOL.md section 6, "Sending again"). A Session sends them when it
// is connected and sends the unanswered ones again (resend=<cid>) after a
// reconnect; the server recognises a resend by its id, so a message never
// arrives twice. The outbox lives in memory only, for the run.
type Outbox struct {
	mu     sync.Mutex
	items  []*Pending
	prefix string
	seq    uint64
}

// Pending is one message in an outbox. Its fields are fixed once added;
// Done is closed when the server answered (or the message was given up),
// and Result then says how.
type Pending struct {
	CID    string
	To     string
	Text   string
	Queued time.Time

	done chan struct{}
	sent Sent
	err  error

	// Owned by the Session, under its lock.
	conn  *Client // the connection it was last written to
	tries int     // how many times it was written
}

// Done is closed once the message has its outcome.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Result is the outcome: the server's answer, or why it was not sent.
// Valid once Done is closed.
func (p *Pending) Result() (Sent, error) { return p.sent, p.err }

// NewOutbox returns an empty outbox whose client ids start with a random
// prefix, so that ids of different runs never meet.
func NewOutbox() *Outbox {
	var b [5]byte
	rand.Read(b[:])
	return &Outbox{prefix: strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))}
}

// Add queues a message at the end and gives it its client id.
func (o *Outbox) Add(to, text string, now time.Time) *Pending {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	p := &Pending{CID: o.prefix + "." + strconv.FormatUint(o.seq, 36), To: to, Text: text, Queued: now, done: make(chan struct{})}
	o.items = append(o.items, p)
	return p
}

// Finish gives p its outcome and takes it out of the outbox. It reports
// false when p had its outcome already (then nothing changes).
func (o *Outbox) Finish(p *Pending, s Sent, err error) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, q := range o.items {
		if q == p {
			o.items = append(o.items[:i], o.items[i+1:]...)
			p.sent, p.err = s, err
			close(p.done)
			return true
		}
	}
	return false
}

// Waiting returns the messages without an outcome, oldest first.
func (o *Outbox) Waiting() []*Pending {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Pending(nil), o.items...)
}

// Len is how many messages wait.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}

package receipts

import (
	"sync"
	"time"
)

// Kind is what a mark says.
type Kind uint8

const (
	Shown Kind = iota + 1 // the reader's client has shown the messages (it acknowledged them)
	Read                  // the reader has read them (the client said READ)
)

// String is the kind as the wire writes it.
func (k Kind) String() string {
	switch k {
	case Shown:
		return "shown"
	case Read:
		return "read"
	}
	return "?"
}

// Mark says that Reader has been shown (or has read) every message Sender
// sent Reader up to ID. It goes to Sender.
type Mark struct {
	Sender, Reader int64
	Kind           Kind
	ID             int64
}

// key is a conversation's marks of one kind.
type key struct {
	sender, reader int64
	kind           Kind
}

// conv is what the coalescer knows of one key.
type conv struct {
	sent int64     // the highest id sent; a mark not above it says nothing new
	held int64     // a higher id waiting for the interval's end; 0: none
	last time.Time // when the key last sent
}

// Coalescer lets one mark per conversation and kind through per interval;
// the marks that come sooner are merged into one, the highest, that falls
// due when the interval is over. Safe for concurrent use.
type Coalescer struct {
	every time.Duration

	mu    sync.Mutex
	convs map[key]*conv
	held  int  // convs with a held mark
	armed bool // the caller was told to call Take, and has not yet
	swept int  // len(convs) after the last sweep
}

// NewCoalescer returns a coalescer of one mark per conversation and kind
// per every (0: every mark goes at once).
func NewCoalescer(every time.Duration) *Coalescer {
	return &Coalescer{every: every, convs: make(map[key]*conv)}
}

// Note takes mark m at now. With send, the caller sends m at once: its
// conversation sent nothing of its kind within the interval. Otherwise m
// is held (or says nothing that was not sent or held already), and when
// wait is above zero the caller must call Take after wait: no Take was
// due before.
func (c *Coalescer) Note(m Mark, now time.Time) (send bool, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key{m.Sender, m.Reader, m.Kind}
	cv := c.convs[k]
	if cv == nil {
		if len(c.convs) >= 2*c.swept+64 {
			c.sweepLocked(now)
		}
		cv = &conv{}
		c.convs[k] = cv
	}
	if m.ID <= cv.sent || m.ID <= cv.held {
		return false, 0
	}
	if cv.last.IsZero() || now.Sub(cv.last) >= c.every {
		if cv.held != 0 { // due, and Take is late: this one covers it
			cv.held = 0
			c.held--
		}
		cv.sent, cv.last = m.ID, now
		return true, 0
	}
	if cv.held == 0 {
		c.held++
	}
	cv.held = m.ID
	if c.armed {
		return false, 0
	}
	c.armed = true
	return false, max(cv.last.Add(c.every).Sub(now), time.Nanosecond)
}

// Take returns the held marks whose interval is over at now, counted as
// sent at now, and when to call Take again: 0 when nothing is held (the
// next Note that holds one says when).
func (c *Coalescer) Take(now time.Time) (due []Mark, next time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var soonest time.Time
	for k, cv := range c.convs {
		if cv.held == 0 {
			if now.Sub(cv.last) >= c.every {
				delete(c.convs, k) // says nothing the sender has not got, and may send at once
			}
			continue
		}
		at := cv.last.Add(c.every)
		if at.After(now) {
			if soonest.IsZero() || at.Before(soonest) {
				soonest = at
			}
			continue
		}
		due = append(due, Mark{Sender: k.sender, Reader: k.reader, Kind: k.kind, ID: cv.held})
		cv.sent, cv.held, cv.last = cv.held, 0, now
		c.held--
	}
	c.swept = len(c.convs)
	c.armed = c.held > 0
	if c.armed {
		next = max(soonest.Sub(now), time.Nanosecond)
	}
	return due, next
}

// sweepLocked forgets the conversations that hold nothing and whose
// interval is over: memory follows the activity of one interval.
func (c *Coalescer) sweepLocked(now time.Time) {
	for k, cv := range c.convs {
		if cv.held == 0 && now.Sub(cv.last) >= c.every {
			delete(c.convs, k)
		}
	}
	c.swept = len(c.convs)
}

// Len is how many conversations are remembered, and how many of them hold
// a mark.
func (c *Coalescer) Len() (convs, held int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.convs), c.held
}

package bench

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"qchat/protocol"
)

// A pair is one sender and one receiver, each on its own connection and
// account. The sender pipelines MSGs with at most window of them waiting
// for their 250 reply; the receiver acknowledges what it got in one ACK per
// read (so a burst costs one ACK, a lone message its own at once).
//
// Message text: "<run> <seq> <sent_ns> " padded with '.' to the size, where
// sent_ns is the sender's clock (monotonic, since the start of the bench).
// The receiver, in the same process, reads it back for the latency; text
// of another run (left over from an interrupted one) is acknowledged and
// counted as stale.
type pair struct {
	b        *bench
	snd, rcv *conn
	n        int     // messages to send
	rate     float64 // messages per second, 0 for as fast as possible

	sentAt []atomic.Int64 // by seq: when sent (ns since start), for the confirm latency

	sent, confirmed, delivered, stored, refused atomic.Int64
	received, stale                             atomic.Int64
	firstRecv, lastRecv                         atomic.Int64 // ns since start
	lastConfirm                                 atomic.Int64

	lat, conf *hist // delivery and confirm latency; owned by the reader goroutines
	lastErr   atomic.Pointer[string]
	gotAll    chan struct{} // closed when the receiver has n messages
	allConf   chan struct{} // closed when the sender has n replies
	credits   chan struct{}
}

func newPair(b *bench, snd, rcv *conn, n int, rate float64) *pair {
	return &pair{b: b, snd: snd, rcv: rcv, n: n, rate: rate,
		sentAt: make([]atomic.Int64, n), lat: newHist(), conf: newHist(),
		gotAll: make(chan struct{}), allConf: make(chan struct{}),
		credits: make(chan struct{}, b.cfg.Window)}
}

func (p *pair) fail(err error) {
	s := err.Error()
	p.lastErr.CompareAndSwap(nil, &s)
}

// send runs on its own goroutine until every message is sent or ctx ends.
func (p *pair) send(ctx context.Context) {
	b := p.b
	to := strconv.FormatInt(p.rcv.id, 10)
	var line []byte
	var interval float64
	if p.rate > 0 {
		interval = float64(time.Second) / p.rate
	}
	pending := false // written but not flushed
	start := b.now()
	for seq := 0; seq < p.n; seq++ {
		if interval > 0 {
			due := start + int64(float64(seq)*interval)
			if wait := due - b.now(); wait > 0 {
				if pending {
					if err := p.snd.write(nil, true); err != nil {
						p.fail(err)
						return
					}
					pending = false
				}
				if !sleepCtx(ctx, time.Duration(wait)) {
					return
				}
			}
		}
		select {
		case p.credits <- struct{}{}:
		default:
			// Window full: send what is queued, then wait for a reply.
			if pending {
				if err := p.snd.write(nil, true); err != nil {
					p.fail(err)
					return
				}
				pending = false
			}
			select {
			case p.credits <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		now := b.now()
		line = appendMsgID(line[:0], seq, to, b.run, now, b.cfg.Size, b.cfg.Unbatched)
		p.sentAt[seq].Store(now)
		if err := p.snd.write(line, b.cfg.Unbatched); err != nil {
			p.fail(err)
			return
		}
		pending = !b.cfg.Unbatched
		p.sent.Add(1)
	}
	if pending {
		if err := p.snd.write(nil, true); err != nil {
			p.fail(err)
		}
	}
}

// appendMsg appends "@<seq base 36> MSG <to> <text>\n" with the text
// padded to size bytes. The text is ours and clean, so it is written as is
// (protocol.AppendCommand would check it again for every message).
func appendMsg(dst []byte, seq int, to, run string, now int64, size int) []byte {
	return appendMsgID(dst, seq, to, run, now, size, false)
}

// appendMsgID is appendMsg with, when cid, the client id
// id=<run>.<seq base 36> after the verb, as qchat's own clients send
// every message (the server journals it before the recipient sees it).
func appendMsgID(dst []byte, seq int, to, run string, now int64, size int, cid bool) []byte {
	dst = append(dst, '@')
	dst = strconv.AppendInt(dst, int64(seq), 36)
	dst = append(dst, " MSG "...)
	if cid {
		dst = append(dst, "id="...)
		dst = append(dst, run...)
		dst = append(dst, '.')
		dst = strconv.AppendInt(dst, int64(seq), 36)
		dst = append(dst, ' ')
	}
	dst = append(dst, to...)
	dst = append(dst, ' ')
	start := len(dst)
	dst = append(dst, run...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, now, 10)
	dst = append(dst, ' ')
	for len(dst)-start < size {
		dst = append(dst, '.')
	}
	return append(dst, '\n')
}

// readReplies runs on its own goroutine: it reads the sender's replies,
// one per MSG, until the connection closes.
func (p *pair) readReplies() {
	b := p.b
	n := int64(p.n)
	for {
		l, err := p.snd.readLine()
		if err != nil {
			if !b.stopping.Load() {
				p.fail(err)
			}
			return
		}
		r, ok := parseReply(l)
		if !ok {
			p.other(p.snd, l)
			continue
		}
		seq, err := strconv.ParseInt(string(r.tag), 36, 64)
		if err != nil || seq < 0 || seq >= n {
			continue
		}
		now := b.now()
		switch {
		case r.code == protocol.CodeSent && bytes.Contains(r.text, []byte(" delivered ")):
			p.delivered.Add(1)
		case r.code == protocol.CodeSent:
			p.stored.Add(1)
		default:
			p.refused.Add(1)
			p.fail(&protocol.Error{Code: r.code, Text: string(r.text)})
		}
		p.conf.add(time.Duration(now - p.sentAt[seq].Load()))
		p.lastConfirm.Store(now)
		select {
		case <-p.credits:
		default:
		}
		if p.confirmed.Add(1) == n {
			close(p.allConf)
		}
	}
}

// receive runs on its own goroutine: it reads the receiver's events and
// acknowledges every message, until the connection closes.
func (p *pair) receive() {
	b := p.b
	run := []byte(b.run + " ")
	var acks acker
	n := int64(p.n)
	for {
		l, err := p.rcv.readLine()
		if err != nil {
			if !b.stopping.Load() {
				p.fail(err)
			}
			return
		}
		if ev, ok := parseMsg(l); !ok {
			p.other(p.rcv, l)
		} else {
			if text, ok := bytes.CutPrefix(ev.text, run); ok {
				now := b.now()
				if sent, ok := sentTime(text); ok {
					p.lat.add(time.Duration(now - sent))
				}
				p.firstRecv.CompareAndSwap(0, now)
				p.lastRecv.Store(now)
				if p.received.Add(1) == n {
					close(p.gotAll)
				}
			} else {
				p.stale.Add(1)
			}
			acks.add(ev.id)
		}
		if err := acks.flush(p.rcv, b.cfg.AckEach); err != nil {
			p.fail(err)
			return
		}
	}
}

// acker gathers the ids a connection has to acknowledge. It sends them
// as qchat's own clients do: once per read from the socket (checked
// after every line: a read that ends with another line, such as
// presence, must not leave its messages unacknowledged), as one
// cumulative ACK ..<last id> when the server takes that (its greeting
// says ackto), else as a list; or, with each, every id at once in an ACK
// and a write of its own.
type acker struct {
	ids []byte // comma-separated
	n   int
	hi  []byte // the last id added
}

func (a *acker) add(id []byte) {
	if a.n > 0 {
		a.ids = append(a.ids, ',')
	}
	a.ids = append(a.ids, id...)
	a.hi = append(a.hi[:0], id...)
	a.n++
}

// flush sends the ACK when it is due; it reports a write failure.
func (a *acker) flush(c *conn, each bool) error {
	if a.n == 0 || (!each && c.r.Buffered() > 0 && a.n < 512) {
		return nil
	}
	var err error
	switch {
	case c.ackTo && !each:
		err = c.ackUpTo(a.hi)
	default:
		err = c.ack(a.ids)
	}
	a.ids, a.n = a.ids[:0], 0
	return err
}

// sentTime reads sent_ns from "<seq> <sent_ns> ...".
func sentTime(text []byte) (int64, bool) {
	_, rest, ok := bytes.Cut(text, []byte{' '})
	if !ok {
		return 0, false
	}
	num, _, _ := bytes.Cut(rest, []byte{' '})
	v, err := strconv.ParseInt(string(num), 10, 64)
	return v, err == nil
}

// other handles a line that is not on the hot path: PING, BYE, presence.
func (p *pair) other(c *conn, l []byte) {
	switch {
	case bytes.HasPrefix(l, []byte("PING ")):
		c.pong(l)
	case bytes.HasPrefix(l, []byte("BYE ")):
		if !p.b.stopping.Load() {
			p.fail(&byeError{string(l)})
		}
	}
}

type byeError struct{ line string }

func (e *byeError) Error() string { return "closed by server: " + e.line }

// sleepCtx sleeps for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runPairs drives every pair until all messages are confirmed and received
// or ctx ends; it returns the time the traffic started (ns since start).
func (b *bench) runPairs(ctx context.Context, pairs []*pair) (start int64) {
	var wg sync.WaitGroup
	for _, p := range pairs {
		wg.Add(2)
		go func() { defer wg.Done(); p.readReplies() }()
		go func() { defer wg.Done(); p.receive() }()
	}
	b.readers = &wg
	start = b.now()
	var senders sync.WaitGroup
	for _, p := range pairs {
		senders.Add(1)
		go func() { defer senders.Done(); p.send(ctx) }()
	}
	for _, p := range pairs {
		select {
		case <-p.gotAll:
		case <-ctx.Done():
		}
		select {
		case <-p.allConf:
		case <-ctx.Done():
		}
	}
	senders.Wait()
	return start
}

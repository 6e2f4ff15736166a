package protocol

import (
	"errors"
	"io"
	"sync"
	"time"
)

// ErrSlowConsumer is returned by Outbox.Write when the peer does not read
// fast enough: the queued bytes would pass the outbox's limit.
var ErrSlowConsumer = errors.New("slow consumer")

// ErrClosed is returned by Outbox.Write after Close.
var ErrClosed = errors.New("outbox closed")

// Outbox queues outgoing lines for one connection without ever blocking the
// caller, and writes them from a flusher goroutine that exists only while
// the connection is busy. Queued bytes are bounded: a write that would
// pass the limit fails with ErrSlowConsumer, and the owner is expected to
// close the connection (others are never slowed by one peer).
//
// One write per wake-up: the flusher takes everything queued when it
// wakes and writes it in one write; what is queued meanwhile goes in the
// next. It swaps two buffers (what it writes, what fills up) and lingers
// for outboxLinger after its last write, parked, so that a connection
// sent one line after another costs a wake-up per write, not a goroutine
// and a buffer. An idle connection holds no goroutine and no buffer.
//
// All methods are safe for concurrent use.
type Outbox struct {
	w            io.Writer
	dl           interface{ SetWriteDeadline(time.Time) error }
	limit        int
	writeTimeout time.Duration
	onError      func(error) // called once, from the flusher, when a write fails

	mu      sync.Mutex
	buf     []byte        // queued, not yet taken by the flusher
	spare   []byte        // the flusher's last written buffer, for buf to reuse
	running bool          // a flusher goroutine exists
	busy    bool          // it has something to write, or is writing
	kick    chan struct{} // wakes a parked flusher (made with it)
	closed  bool
	full    bool       // the limit was hit: only WriteForce still queues
	paused  bool       // between Pause and Resume: lines queue, nothing is written
	err     error      // the first write failure
	idle    *sync.Cond // signalled when the flusher has nothing more to write
}

// outboxLinger is how long a flusher stays after its last write.
const outboxLinger = 50 * time.Millisecond

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// NewOutbox returns an outbox writing to w, queueing at most limit bytes.
// Each write to w must finish within writeTimeout (when w has
// SetWriteDeadline); onError, if not nil, hears the first write failure.
func NewOutbox(w io.Writer, limit int, writeTimeout time.Duration, onError func(error)) *Outbox {
	o := &Outbox{w: w, limit: limit, writeTimeout: writeTimeout, onError: onError}
	o.dl, _ = w.(interface{ SetWriteDeadline(time.Time) error })
	o.idle = sync.NewCond(&o.mu)
	return o
}

// Write queues p (whole lines) and returns at once. p is copied.
func (o *Outbox) Write(p []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writeLocked(p, false)
}

// WriteForce queues p even past the limit; for the last line before a close.
func (o *Outbox) WriteForce(p []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writeLocked(p, true)
}

func (o *Outbox) writeLocked(p []byte, force bool) error {
	if o.closed {
		return ErrClosed
	}
	if o.err != nil {
		return o.err
	}
	if !force && (o.full || len(o.buf)+len(p) > o.limit) {
		o.full = true
		return ErrSlowConsumer
	}
	if o.buf == nil {
		if o.spare != nil {
			o.buf, o.spare = o.spare, nil
		} else {
			o.buf = getBuf()
		}
	}
	o.buf = append(o.buf, p...)
	if !o.paused {
		o.wakeLocked()
	}
	return nil
}

// wakeLocked makes the flusher write what is queued: starts it, or wakes
// it where it lingers.
func (o *Outbox) wakeLocked() {
	switch {
	case o.busy:
	case !o.running:
		o.running, o.busy = true, true
		o.kick = make(chan struct{}, 1)
		go o.flush(o.kick)
	default:
		o.busy = true
		o.kick <- struct{}{} // never blocks: one kick per parking, capacity 1
	}
}

// Queued returns the number of bytes waiting to be written.
func (o *Outbox) Queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// flush is the flusher: it writes what is queued, one write per wake-up,
// then parks until kicked, or ends after outboxLinger (at once once the
// outbox is closed or broken).
func (o *Outbox) flush(kick chan struct{}) {
	var linger *time.Timer
	for {
		o.mu.Lock()
		if len(o.buf) == 0 || o.err != nil || o.paused {
			o.busy = false
			o.idle.Broadcast()
			if o.closed || o.err != nil || !o.park(kick, &linger) {
				o.stopLocked()
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
			continue
		}
		out := o.buf
		o.buf, o.spare = o.spare, nil
		if o.buf != nil {
			o.buf = o.buf[:0]
		}
		o.mu.Unlock()

		if o.dl != nil && o.writeTimeout > 0 {
			o.dl.SetWriteDeadline(time.Now().Add(o.writeTimeout))
		}
		_, err := o.w.Write(out)
		o.mu.Lock()
		first := err != nil && o.err == nil
		if first {
			o.err = err
		}
		switch {
		case cap(out) > 64<<10:
		case o.spare == nil:
			o.spare = out[:0]
		case cap(out) > cap(o.spare): // keep the bigger: a busy connection stops growing one
			putBuf(o.spare)
			o.spare = out[:0]
		default:
			putBuf(out)
		}
		o.mu.Unlock()
		if first && o.onError != nil {
			o.onError(err)
		}
	}
}

// park waits, with o.mu held and released meanwhile, for a kick or the
// end of the linger; it reports whether the flusher has work again.
func (o *Outbox) park(kick chan struct{}, linger **time.Timer) bool {
	if *linger == nil {
		*linger = time.NewTimer(outboxLinger)
	} else {
		(*linger).Reset(outboxLinger)
	}
	o.mu.Unlock()
	select {
	case <-kick:
		o.mu.Lock()
		return true
	case <-(*linger).C:
	}
	o.mu.Lock()
	if o.busy { // kicked as the linger ended
		<-kick
		return true
	}
	return false
}

// stopLocked ends the flusher: its buffers go back to the pool.
func (o *Outbox) stopLocked() {
	o.running, o.busy, o.kick = false, false, nil
	if o.spare != nil {
		putBuf(o.spare)
		o.spare = nil
	}
	if o.buf != nil && (len(o.buf) == 0 || o.err != nil) {
		putBuf(o.buf)
		o.buf = nil
	}
	o.idle.Broadcast()
}

func getBuf() []byte { return (*outPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) <= 64<<10 {
		b = b[:0]
		outPool.Put(&b)
	}
}

// Close stops accepting writes and waits up to timeout for what is queued
// to be written. It reports whether everything was written.
func (o *Outbox) Close(timeout time.Duration) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.running && !o.busy {
		o.kick <- struct{}{} // end the lingering flusher now
		o.busy = true
	}
	if o.busy {
		t := time.AfterFunc(timeout, func() {
			o.mu.Lock()
			if o.err == nil {
				o.err = ErrClosed
			}
			o.idle.Broadcast()
			o.mu.Unlock()
		})
		for o.busy && o.err == nil {
			o.idle.Wait()
		}
		t.Stop()
	}
	return o.err == nil && len(o.buf) == 0
}

// Pause writes what is queued and then last, and stops there: lines
// queued after it (by any goroutine) wait, unwritten, until Resume. It is
// for a connection that changes its transport (STARTTLS): last is the
// reply that announces the change, and nothing may follow it on the old
// transport. Pause blocks until last is written (each write bounded by the
// write timeout) and returns the write's error, if any; the owner then
// closes the connection. Only one goroutine may use Pause and Resume.
func (o *Outbox) Pause(last []byte) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	o.paused = true
	for o.busy && o.err == nil { // earlier lines first, in order
		o.idle.Wait()
	}
	if o.err != nil {
		err := o.err
		o.mu.Unlock()
		return err
	}
	out := append(o.buf, last...)
	o.buf = nil
	o.mu.Unlock()

	if o.dl != nil && o.writeTimeout > 0 {
		o.dl.SetWriteDeadline(time.Now().Add(o.writeTimeout))
	}
	_, err := o.w.Write(out)
	putBuf(out)
	if err != nil {
		o.mu.Lock()
		if o.err == nil {
			o.err = err
		}
		o.mu.Unlock()
	}
	return err
}

// Resume makes w the outbox's writer (the new transport) and writes first
// (nil for nothing), then what was queued since Pause, in order: first is
// what must open the new transport (the greeting again, inside TLS).
func (o *Outbox) Resume(w io.Writer, first []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w = w
	o.dl, _ = w.(interface{ SetWriteDeadline(time.Time) error })
	o.paused = false
	if len(first) > 0 && !o.closed && o.err == nil {
		old := o.buf
		o.buf = append(append(getBuf(), first...), old...)
		if old != nil {
			putBuf(old)
		}
	}
	if len(o.buf) > 0 && o.err == nil {
		o.wakeLocked()
	}
}

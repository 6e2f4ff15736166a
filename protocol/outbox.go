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
// there is something to write. Queued bytes are bounded: a write that would
// pass the limit fails with ErrSlowConsumer, and the owner is expected to
// close the connection (others are never slowed by one peer).
//
// All methods are safe for concurrent use.
type Outbox struct {
	w            io.Writer
	dl           interface{ SetWriteDeadline(time.Time) error }
	limit        int
	writeTimeout time.Duration
	onError      func(error) // called once, from the flusher, when a write fails

	mu       sync.Mutex
	buf      []byte // queued, not yet taken by the flusher
	flushing bool
	closed   bool
	full     bool       // the limit was hit: only WriteForce still queues
	err      error      // the first write failure
	idle     *sync.Cond // signalled when the flusher stops
}

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
		o.buf = (*outPool.Get().(*[]byte))[:0]
	}
	o.buf = append(o.buf, p...)
	if !o.flushing {
		o.flushing = true
		go o.flush()
	}
	return nil
}

// Queued returns the number of bytes waiting to be written.
func (o *Outbox) Queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// flush runs while there is something to write; one at a time.
func (o *Outbox) flush() {
	var out []byte
	for {
		o.mu.Lock()
		if out != nil {
			putBuf(out)
		}
		if len(o.buf) == 0 || o.err != nil {
			if o.buf != nil {
				putBuf(o.buf)
				o.buf = nil
			}
			o.flushing = false
			o.idle.Broadcast()
			o.mu.Unlock()
			return
		}
		out, o.buf = o.buf, nil
		o.mu.Unlock()

		if o.dl != nil && o.writeTimeout > 0 {
			o.dl.SetWriteDeadline(time.Now().Add(o.writeTimeout))
		}
		if _, err := o.w.Write(out); err != nil {
			o.mu.Lock()
			first := o.err == nil
			if first {
				o.err = err
			}
			o.mu.Unlock()
			if first && o.onError != nil {
				o.onError(err)
			}
		}
	}
}

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
	if o.flushing {
		t := time.AfterFunc(timeout, func() {
			o.mu.Lock()
			o.err = ErrClosed
			o.idle.Broadcast()
			o.mu.Unlock()
		})
		for o.flushing && o.err == nil {
			o.idle.Wait()
		}
		t.Stop()
	}
	return o.err == nil && len(o.buf) == 0
}

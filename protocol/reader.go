package protocol

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// ErrLineTooLong is returned by LineReader.ReadLine for a line over its
// limit. The reader then drops the rest of that line and goes on with the next.
var ErrLineTooLong = errors.New("line too long")

const (
	smallBuf    = 512      // what an idle reader holds
	bigBuf      = 64 << 10 // what a busy reader borrows from the pool
	idleRelease = 200 * time.Millisecond
)

var (
	bigPool   = sync.Pool{New: func() any { b := make([]byte, bigBuf); return &b }}
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
)

// LineReader reads LF-terminated lines of at most max bytes from a
// connection. It is built for many mostly idle connections: idle, it holds
// a 512-byte buffer; busy, it borrows a 64 KiB one and gives it back after
// idleRelease without input. When rd has SetReadDeadline (a net.Conn), the
// reader uses read deadlines for that and nobody else may set them.
//
// A LineReader is used by one goroutine.
type LineReader struct {
	rd       io.Reader
	dl       interface{ SetReadDeadline(time.Time) error }
	max      int
	small    []byte
	buf      []byte
	big      *[]byte // non-nil while buf is borrowed
	r, w     int
	discard  bool  // dropping the rest of an over-long line
	deadline bool  // a release deadline is set on rd
	err      error // a read error that came with data, returned next
}

// NewLineReader returns a reader of lines up to max bytes (line end included).
func NewLineReader(rd io.Reader, max int) *LineReader {
	if max <= 0 || max > bigBuf/2 {
		max = bigBuf / 2
	}
	l := &LineReader{rd: rd, max: max, small: make([]byte, smallBuf)}
	l.buf = l.small
	l.dl, _ = rd.(interface{ SetReadDeadline(time.Time) error })
	return l
}

// ReadLine returns the next line without its LF (and without a CR before
// it). The slice is valid until the next call. A line over the limit gives
// ErrLineTooLong once, as soon as it is seen; its remainder is skipped.
// At the end of input, a last line without LF is returned, then io.EOF.
func (l *LineReader) ReadLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.r:l.w], '\n'); i >= 0 {
			line := l.buf[l.r : l.r+i]
			l.r += i + 1
			if l.discard {
				l.discard = false
				continue
			}
			if len(line) >= l.max {
				return nil, ErrLineTooLong
			}
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		if l.discard {
			l.r, l.w = 0, 0
		} else if l.w-l.r >= l.max {
			l.discard = true
			l.r, l.w = 0, 0
			return nil, ErrLineTooLong
		}
		if err := l.fill(); err != nil {
			if l.w > l.r && !l.discard && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
				line := l.buf[l.r:l.w]
				l.r = l.w
				return bytes.TrimSuffix(line, []byte{'\r'}), nil
			}
			return nil, err
		}
	}
}

// fill reads more input, making room first.
func (l *LineReader) fill() error {
	if l.err != nil {
		return l.err
	}
	if l.small == nil { // given back by Idle
		l.small = *smallPool.Get().(*[]byte)
		l.buf = l.small
	}
	if l.r == l.w {
		l.r, l.w = 0, 0
	} else if l.r > 0 {
		l.w = copy(l.buf, l.buf[l.r:l.w])
		l.r = 0
	}
	if l.w == len(l.buf) && l.big == nil {
		l.borrow()
	}
	if l.big != nil && l.w == 0 && l.dl != nil {
		// Drained while holding the big buffer: wait a little for more, then
		// give it back rather than sit on 64 KiB while idle.
		l.dl.SetReadDeadline(time.Now().Add(idleRelease))
		l.deadline = true
		n, err := l.rd.Read(l.buf)
		l.w = n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if n == 0 {
				l.release()
			}
			err = nil
		}
		if n > 0 {
			l.err = err // lines first, then the error
			return nil
		}
		if err != nil {
			return err
		}
	}
	if l.deadline {
		l.dl.SetReadDeadline(time.Time{})
		l.deadline = false
	}
	n, err := l.rd.Read(l.buf[l.w:])
	l.w += n
	if n > 0 && l.w == len(l.buf) && l.big == nil {
		l.borrow() // a full small read: more is coming, go big
	}
	if n > 0 {
		l.err = err // lines first, then the error
		return nil
	}
	return err
}

func (l *LineReader) borrow() {
	l.big = bigPool.Get().(*[]byte)
	n := copy(*l.big, l.buf[l.r:l.w])
	l.buf, l.r, l.w = *l.big, 0, n
}

func (l *LineReader) release() {
	bigPool.Put(l.big)
	l.big = nil
	l.buf, l.r, l.w = l.small, 0, 0
}

// Buffered returns what was read past the last line returned, valid
// until the next call: for a connection that stops speaking lines (a relay
// hands its bytes on).
func (l *LineReader) Buffered() []byte { return l.buf[l.r:l.w] }

// Idle gives back the reader's buffer when it holds no unread byte: for a
// connection that will not be read for a while (the server's parked
// sessions). The next read takes a buffer again. It reports whether it
// gave the buffer back.
func (l *LineReader) Idle() bool {
	if l.r != l.w || l.discard || l.err != nil {
		return false
	}
	if l.big != nil {
		l.release()
	}
	if b := l.small; b != nil {
		smallPool.Put(&b)
		l.small, l.buf, l.r, l.w = nil, nil, 0, 0
	}
	return true
}

// Close gives back a borrowed buffer. The reader must not be used after.
func (l *LineReader) Close() {
	if l.big != nil {
		l.release()
	}
}

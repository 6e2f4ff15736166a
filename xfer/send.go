package xfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Meter hears about a transfer as it runs, from the transfer's goroutine.
// Any method may be a no-op.
type Meter interface {
	// Begin: the peer answered; total bytes will cross (resumed ones
	// excluded), of all the offer's bytes.
	Begin(files int, all, total int64)
	// Bytes: n more bytes crossed.
	Bytes(n int)
	// FileDone: one file is through (or failed, with err).
	FileDone(f FileResult)
}

// FileResult is the outcome of one file of an offer.
type FileResult struct {
	Name    string // as offered (sender) or as sanitized (receiver)
	Path    string // receiver: where it was saved, relative to the folder
	Size    int64
	Resumed int64  // bytes that were already there from an earlier try
	Moved   int64  // bytes that crossed this time
	Hash    string // the file hash (HashName) of the whole file, hex
	Err     error  // nil when the file is complete and verified
}

// SendResult is the outcome of a whole offer, as the sender sees it.
type SendResult struct {
	Files   []FileResult
	Refused string // the receiver refused the offer, and why ("" if not)
	Path    string // the link's path: "direct" or "relay"
}

// Moved is the bytes that crossed in all; Resumed those that did not need to.
func (r SendResult) Moved() (moved, resumed int64) {
	for _, f := range r.Files {
		moved += f.Moved
		resumed += f.Resumed
	}
	return moved, resumed
}

// Failed returns the files that did not get through.
func (r SendResult) Failed() []FileResult {
	var out []FileResult
	for _, f := range r.Files {
		if f.Err != nil {
			out = append(out, f)
		}
	}
	return out
}

// ErrRefused is returned by Send when the receiver refused the whole offer.
var ErrRefused = errors.New("refused by the receiver")

// ErrSkipped is wrapped by the error of a file the receiver will not take
// (SKIP): offering it again will not help.
var ErrSkipped = errors.New("refused by the receiver")

// chunk is the size of one read and write of file data.
const chunk = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

// Send offers o over an established file link and sends what the receiver
// wants: it announces the files, learns which ones the receiver already
// holds part of (and the hash of that part), and streams each file from
// where a matching part ends, or from zero when the source changed since.
// The hash of each whole file (BLAKE3) follows its data; the receiver checks it
// before it keeps the file. Send returns when every file was answered, the
// link failed (the result then holds what got through), or ctx ended.
//
// Send owns the link: it is closed when Send returns.
func Send(ctx context.Context, l *Link, o *Offer, m Meter) (SendResult, error) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	res := SendResult{Files: make([]FileResult, len(o.Items)), Path: l.Path}
	for i, it := range o.Items {
		res.Files[i] = FileResult{Name: it.Name, Size: it.Size, Err: errors.New("not sent")}
	}
	l.writeLine("FILES", strconv.Itoa(len(o.Items)), strconv.FormatInt(o.Total, 10))
	for i, it := range o.Items {
		l.writeLine("F", strconv.Itoa(i), strconv.FormatInt(it.Size, 10), escapeName(it.Name))
	}
	if err := l.writeLine("END"); err != nil {
		return res, err
	}
	if err := l.flush(); err != nil {
		return res, err
	}

	// The answer: HAVE and SKIP lines, then GO, or NO.
	have := make(map[int]resumePoint)
	skip := make(map[int]string)
	for {
		verb, rest, err := l.expect("HAVE", "SKIP", "GO", "NO", "WAIT")
		if err != nil {
			return res, fmt.Errorf("waiting for the receiver's answer: %w", err)
		}
		if verb == "WAIT" {
			continue // it is hashing what it already holds
		}
		if verb == "GO" {
			break
		}
		if verb == "NO" {
			res.Refused = rest
			return res, fmt.Errorf("%w: %s", ErrRefused, clipText(rest))
		}
		n := 3
		if verb == "SKIP" {
			n = 2
		}
		args, err := fields(rest, n, verb == "SKIP")
		if err != nil {
			return res, err
		}
		idx, err := parseCount(args[0], int64(len(o.Items)-1))
		if err != nil {
			return res, err
		}
		if verb == "SKIP" {
			skip[int(idx)] = args[1]
			res.Files[idx].Err = fmt.Errorf("%w: %s", ErrSkipped, clipText(args[1]))
			continue
		}
		off, err := parseCount(args[1], o.Items[idx].Size)
		if err != nil {
			return res, err
		}
		have[int(idx)] = resumePoint{off, args[2]}
	}

	var wire int64
	for i, it := range o.Items {
		if _, ok := skip[i]; !ok {
			wire += it.Size - have[i].offset
		}
	}
	if m != nil {
		m.Begin(len(o.Items)-len(skip), o.Total, wire)
	}

	// Answers come back while later files are still being sent. They
	// come only as files are through, so the reader waits without a
	// deadline while we send (a dead receiver fails our writes); once
	// DONE is out, the rest must come within the idle timeout.
	acks := make(chan ackResult, 1)
	var sent atomic.Bool
	l.conn.SetReadDeadline(time.Time{})
	go func() { acks <- readAcks(l, len(o.Items), &sent) }()

	for i, it := range o.Items {
		if _, ok := skip[i]; ok {
			continue
		}
		f := &res.Files[i]
		f.Err = nil
		off, sum, err := sendFile(l, i, it, have[i], m)
		f.Resumed, f.Moved, f.Hash = off, it.Size-off, sum
		if err != nil {
			f.Err, f.Moved = err, 0
			var fe *fileError
			if errors.As(err, &fe) {
				continue // this file only (it changed, or cannot be read)
			}
			l.Close()
			a := <-acks
			a.apply(&res, m)
			return res, err
		}
	}
	if err := l.send("DONE"); err != nil {
		l.Close()
		<-acks
		return res, err
	}
	sent.Store(true)
	l.readDeadline()
	a := <-acks
	a.apply(&res, m)
	if a.err != nil {
		return res, a.err
	}
	return res, nil
}

type resumePoint struct {
	offset int64
	hash   string // of the receiver's first offset bytes
}

// fileError is a failure of one file that leaves the link usable.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// sendFile sends one file: DATA <idx> <offset> <length>, the bytes, SUM.
// It resumes at the receiver's offset when the receiver's part hashes like
// our first offset bytes, else starts from zero. A file that cannot be
// read, or whose size changed, is announced with DATA of length 0 and
// SUM -, which tells the receiver to drop it.
func sendFile(l *Link, idx int, it Item, have resumePoint, m Meter) (int64, string, error) {
	h := newFileHash()
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	fail := func(err error) (int64, string, error) {
		// Tell the receiver to give this file up; the link goes on.
		l.writeLine("DATA", strconv.Itoa(idx), "0", "0")
		if werr := l.send("SUM", strconv.Itoa(idx), "-"); werr != nil {
			return 0, "", werr
		}
		return 0, "", &fileError{err}
	}
	f, err := os.Open(it.Local)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() != it.Size {
		return fail(fmt.Errorf("%s changed size since it was offered (%d, now %d bytes)", it.Local, it.Size, fi.Size()))
	}
	off := int64(0)
	if have.offset > 0 {
		// Hashing what the receiver holds takes a while for a big part:
		// it hears WAIT meanwhile.
		last := time.Now()
		for left := have.offset; left > 0; {
			k, err := f.Read(buf[:min(int64(len(buf)), left)])
			h.Write(buf[:k])
			left -= int64(k)
			if err != nil && left > 0 {
				return fail(err)
			}
			if l.idle > 0 && time.Since(last) > l.idle/3 {
				if err := l.send("WAIT"); err != nil {
					return 0, "", err
				}
				last = time.Now()
			}
		}
		if hex.EncodeToString(h.Sum(nil)) == have.hash {
			off = have.offset
		} else {
			// The source is not what the part was made of: start again.
			h.Reset()
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fail(err)
			}
		}
	}
	n := it.Size - off
	l.writeLine("DATA", strconv.Itoa(idx), strconv.FormatInt(off, 10), strconv.FormatInt(n, 10))
	if err := copyData(l, f, h, n, buf, m); err != nil {
		return off, "", err // the receiver is owed bytes: the link is broken
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := l.writeLine("SUM", strconv.Itoa(idx), sum); err != nil {
		return off, "", err
	}
	// Flushed with the next DATA, or by DONE: small files travel together.
	if l.w.Buffered() >= chunk {
		if err := l.flush(); err != nil {
			return off, "", err
		}
	}
	return off, sum, nil
}

// copyData sends n bytes of f, hashing them into h. Short files (a source
// truncated while sent) break the link: the receiver cannot be told
// anything in the middle of the bytes it was promised.
func copyData(l *Link, f *os.File, h hash.Hash, n int64, buf []byte, m Meter) error {
	if n < int64(l.w.Available()) {
		// Small: through the buffer, together with the lines around it.
		b := buf[:n]
		if _, err := io.ReadFull(f, b); err != nil {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		h.Write(b)
		l.w.Write(b)
		if m != nil {
			m.Bytes(len(b))
		}
		return nil
	}
	if err := l.flush(); err != nil {
		return err
	}
	start, sent := time.Now(), int64(0)
	piece := len(buf)
	if l.rate > 0 {
		// Slow links get small writes, so that the receiver sees bytes
		// well within its idle timeout: one at least every quarter of it
		// (and of a second).
		gap := time.Second / 4
		if l.idle > 0 {
			gap = min(gap, l.idle/4)
		}
		piece = int(min(int64(piece), max(int64(float64(l.rate)*gap.Seconds()), 1024)))
	}
	return pipe(n, func(b []byte) error {
		if _, err := io.ReadFull(f, b); err != nil {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		h.Write(b)
		return nil
	}, func(b []byte) error {
		for len(b) > 0 {
			p := b[:min(len(b), piece)]
			b = b[len(p):]
			l.writeDeadline()
			if _, err := l.conn.Write(p); err != nil {
				return err
			}
			if m != nil {
				m.Bytes(len(p))
			}
			if l.rate > 0 {
				// Hold back until the bytes sent fit the rate.
				sent += int64(len(p))
				due := start.Add(time.Duration(float64(sent) / float64(l.rate) * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
		}
		return nil
	})
}

// ackResult is what the receiver answered, file by file.
type ackResult struct {
	ok  map[int][2]string // idx -> hash, saved path
	bad map[int]string
	err error
}

func (a ackResult) apply(res *SendResult, m Meter) {
	for idx, v := range a.ok {
		f := &res.Files[idx]
		if f.Err == nil && f.Hash != "" && v[0] != f.Hash {
			f.Err = fmt.Errorf("receiver saved a different hash %s", v[0])
		}
		f.Path = v[1]
	}
	for idx, why := range a.bad {
		res.Files[idx].Err = fmt.Errorf("receiver: %s", clipText(why))
		res.Files[idx].Moved = 0
	}
	for i := range res.Files {
		f := &res.Files[i]
		if f.Err == nil && a.ok[i] == ([2]string{}) {
			f.Err = errors.New("no answer from the receiver")
			f.Moved = 0
		}
		if m != nil {
			m.FileDone(*f)
		}
	}
}

// readAcks reads OK and BAD lines until BYE or the link ends: under no
// deadline (Send cleared it) until sent is set, then each within the idle
// timeout.
func readAcks(l *Link, count int, sent *atomic.Bool) ackResult {
	a := ackResult{ok: make(map[int][2]string), bad: make(map[int]string)}
	for {
		if sent.Load() {
			l.readDeadline()
		}
		verb, rest, err := l.readLineNow()
		if err == nil && verb != "OK" && verb != "BAD" && verb != "BYE" {
			err = protoErr("expected OK, BAD or BYE, got %q", clipText(verb))
		}
		if err != nil {
			a.err = err
			return a
		}
		if verb == "BYE" {
			return a
		}
		n := 3
		if verb == "BAD" {
			n = 2
		}
		args, err := fields(rest, n, true)
		if err != nil {
			a.err = err
			return a
		}
		idx, err := parseCount(args[0], int64(count-1))
		if err != nil {
			a.err = err
			return a
		}
		if verb == "OK" {
			a.ok[int(idx)] = [2]string{args[1], args[2]}
		} else {
			a.bad[int(idx)] = args[1]
		}
	}
}

package history

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
)

// convFile is what one Log knows of one conversation's file: the open file,
// the ids of the records it holds and how far it has been scanned for them.
type convFile struct {
	path string

	mu     sync.Mutex
	f      *os.File           // nil until first opened, and after close
	off    int64              // bytes of f scanned into ids; always just after a '\n'
	ids    map[int64]struct{} // ids of the records in f[:off]
	closed bool
}

// append writes line, the line of the record with id, unless a record with
// that id is in the file already. It blocks while another writer holds the
// file's flock.
func (c *convFile) append(line []byte, id int64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.acquireLocked(true); err != nil {
		return false, err
	}
	defer unlockFile(c.f)
	if err := c.syncLocked(); err != nil {
		return false, err
	}
	if _, dup := c.ids[id]; dup {
		return false, nil
	}
	// One write(2) with O_APPEND: the line lands whole at the end, or, if the
	// process dies within the call, as a torn tail the next writer cuts.
	n, err := c.f.Write(line)
	if err != nil {
		if n > 0 {
			err = errors.Join(err, os.Truncate(c.path, c.off))
		}
		return false, fmt.Errorf("history: append: %w", err)
	}
	c.off += int64(n)
	c.ids[id] = struct{}{}
	return true, nil
}

// has reports whether a record with id is in the file; a missing file holds
// nothing and is not created.
func (c *convFile) has(id int64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, err := c.acquireLocked(false)
	if !ok || err != nil {
		return false, err
	}
	defer unlockFile(c.f)
	if err := c.syncLocked(); err != nil {
		return false, err
	}
	_, ok = c.ids[id]
	return ok, nil
}

func (c *convFile) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f, c.ids = nil, nil
	return err
}

// acquireLocked opens the file if needed and takes its exclusive flock. When
// the path no longer names the open file (someone removed or replaced it) it
// starts over on the file the path names now. With create false a missing
// file is not created: acquireLocked returns false and holds no lock.
func (c *convFile) acquireLocked(create bool) (bool, error) {
	if c.closed {
		return false, ErrClosed
	}
	for range 3 {
		if c.f == nil {
			if ok, err := c.openLocked(create); !ok || err != nil {
				return false, err
			}
		}
		if err := lockFile(c.f, true); err != nil {
			return false, fmt.Errorf("history: %w", err)
		}
		same, err := c.currentLocked()
		if err != nil {
			unlockFile(c.f)
			return false, err
		}
		if same {
			return true, nil
		}
		c.f.Close() // drops the lock too
		c.f, c.ids, c.off = nil, nil, 0
	}
	return false, fmt.Errorf("history: %s keeps being replaced", c.path)
}

// openLocked opens (with create, creates) the file with mode 0600, forcing
// that mode on a file made by someone else with a wider one.
func (c *convFile) openLocked(create bool) (bool, error) {
	flag := os.O_RDWR | os.O_APPEND
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(c.path, flag, 0o600)
	if !create && errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("history: %w", err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file", c.path)
	case fi.Mode().Perm() != 0o600:
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return false, fmt.Errorf("history: %w", err)
	}
	c.f, c.off, c.ids = f, 0, make(map[int64]struct{})
	return true, nil
}

// currentLocked reports whether the path still names the open file.
func (c *convFile) currentLocked() (bool, error) {
	pfi, err := os.Stat(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("history: %w", err)
	}
	ffi, err := c.f.Stat()
	if err != nil {
		return false, fmt.Errorf("history: %w", err)
	}
	return os.SameFile(pfi, ffi), nil
}

// syncLocked adds to ids the records other writers appended since the last
// look, and cuts a torn last line. The caller holds the exclusive flock, so
// a last line without '\n' is not being written: its writer died within the
// write, before the record could be acknowledged, and it will come again.
func (c *convFile) syncLocked() error {
	fi, err := c.f.Stat()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	size := fi.Size()
	if size < c.off { // emptied or cut by someone: scan it all again
		c.off, c.ids = 0, make(map[int64]struct{})
	}
	if size == c.off {
		return nil
	}
	end, err := eachRecord(c.f, c.off, size, func(r Record) { c.ids[r.ID] = struct{}{} })
	c.off = end
	if err != nil {
		return fmt.Errorf("history: scan %s: %w", c.path, err)
	}
	if end < size {
		// By path, not by c.f: on Windows an O_APPEND handle may not
		// truncate. The path names c.f, checked under the lock.
		if err := os.Truncate(c.path, end); err != nil {
			return fmt.Errorf("history: cut torn line: %w", err)
		}
	}
	return nil
}

// eachRecord calls fn with each record of the complete lines of f[off:end],
// skipping malformed lines, and returns the offset just after the last '\n'.
// Memory use is bounded by the longest line, not by the file.
func eachRecord(f io.ReaderAt, off, end int64, fn func(Record)) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, end-off), 64<<10)
	var long []byte // a line longer than br's buffer, gathered
	for {
		chunk, err := br.ReadSlice('\n')
		switch err {
		case nil:
		case bufio.ErrBufferFull:
			long = append(long, chunk...)
			continue
		case io.EOF:
			return off, nil // what is left, if anything, is a torn line
		default:
			return off, err
		}
		line := chunk
		if len(long) > 0 {
			long = append(long, chunk...)
			line, long = long, long[:0]
		}
		off += int64(len(line))
		if r, err := parseLine(line[:len(line)-1]); err == nil {
			fn(r)
		}
	}
}

// tailChunk is the first amount readTail reads; a variable for tests.
var tailChunk int64 = 64 << 10

// readTail returns the last n records of f[:size], reading backwards from
// the end in doubling chunks until it has n records or reaches the start.
func readTail(f io.ReaderAt, size int64, n int) ([]Record, error) {
	for chunk := tailChunk; ; chunk *= 2 {
		start := max(size-chunk, 0)
		buf := make([]byte, size-start)
		m, err := f.ReadAt(buf, start)
		if err != nil && err != io.EOF {
			return nil, err
		}
		buf = buf[:m]
		// Drop a torn last line, and a first line the chunk may have cut.
		buf = buf[:bytes.LastIndexByte(buf, '\n')+1]
		if start > 0 {
			buf = buf[bytes.IndexByte(buf, '\n')+1:]
		}
		var recs []Record
		for line := range bytes.Lines(buf) {
			if r, err := parseLine(line[:len(line)-1]); err == nil {
				recs = append(recs, r)
			}
		}
		if len(recs) >= n || start == 0 {
			return slices.Clone(recs[max(len(recs)-n, 0):]), nil
		}
	}
}

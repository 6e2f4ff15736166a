package history

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Merge adds records fetched from elsewhere (a server's archive) to a
// conversation: those whose id is not in the file already, each at its
// place in time order (ties by id), so that the file reads in order
// whatever order they were fetched in. It reports how many it added.
//
// When every new record comes after the file's last one, they are
// appended (one write). Otherwise the file is written anew beside itself
// and renamed over it, under its flock: a reader sees the old file or the
// new one, never a mix, and other writers (other processes included)
// start over on the new one. The lines already there keep their order and
// their bytes, malformed ones included.
func (l *Log) Merge(conv string, recs []Record) (int, error) {
	for _, r := range recs {
		if err := checkRecord(r); err != nil {
			return 0, err
		}
	}
	f, err := l.file(conv)
	if err != nil {
		return 0, err
	}
	return f.merge(recs)
}

// before orders records in a file: by time, then by id.
func before(a, b Record) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func (c *convFile) merge(recs []Record) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.acquireLocked(true); err != nil {
		return 0, err
	}
	locked := c.f
	defer func() {
		if locked != nil {
			unlockFile(locked)
		}
	}()
	if err := c.syncLocked(); err != nil {
		return 0, err
	}
	var add []Record
	seen := make(map[int64]bool, len(recs))
	for _, r := range recs {
		if _, dup := c.ids[r.ID]; !dup && !seen[r.ID] {
			seen[r.ID] = true
			r.Time = r.Time.UTC().Truncate(time.Millisecond) // as a line gives it back
			add = append(add, r)
		}
	}
	if len(add) == 0 {
		return 0, nil
	}
	slices.SortFunc(add, before)
	old, err := readAll(c.f, c.off)
	if err != nil {
		return 0, fmt.Errorf("history: merge %s: %w", c.path, err)
	}
	var last *Record
	for i := len(old) - 1; i >= 0 && last == nil; i-- {
		if old[i].ok {
			last = &old[i].rec
		}
	}
	if last == nil || before(*last, add[0]) < 0 {
		var b []byte
		for _, r := range add {
			b = appendLine(b, r)
		}
		n, err := c.f.Write(b)
		if err != nil {
			if n > 0 {
				err = errors.Join(err, os.Truncate(c.path, c.off))
			}
			return 0, fmt.Errorf("history: append: %w", err)
		}
		c.off += int64(n)
		for _, r := range add {
			c.ids[r.ID] = struct{}{}
		}
		return len(add), nil
	}
	var b []byte
	i := 0
	for _, l := range old {
		for l.ok && i < len(add) && before(add[i], l.rec) < 0 {
			b = appendLine(b, add[i])
			i++
		}
		b = append(b, l.raw...)
	}
	for ; i < len(add); i++ {
		b = appendLine(b, add[i])
	}
	if err := replaceFile(c.path, b); err != nil {
		return 0, err
	}
	// The path names the new file now: drop the old one (and its lock,
	// which the writers waiting on it then find stale) and open the new
	// one at the next use.
	c.f.Close()
	c.f, c.ids, c.off, locked = nil, nil, 0, nil
	return len(add), nil
}

// oldLine is one line of a file being merged: its bytes ('\n' included)
// and, when it parses, its record.
type oldLine struct {
	raw []byte
	rec Record
	ok  bool
}

// readAll reads the complete lines of f[:size].
func readAll(f *os.File, size int64) ([]oldLine, error) {
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil && size > 0 {
		return nil, err
	}
	var out []oldLine
	for line := range bytes.Lines(buf) {
		l := oldLine{raw: line}
		l.rec, l.ok = parseLineOK(line[:len(line)-1])
		out = append(out, l)
	}
	return out, nil
}

func parseLineOK(line []byte) (Record, bool) {
	r, err := parseLine(line)
	return r, err == nil
}

// replaceFile writes b to a new file beside path (mode 0600) and renames
// it over path.
func replaceFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("history: merge: %w", err)
	}
	return nil
}

// Mark returns the value of a mark of the user's history (0 when it was
// never set): a number kept beside the conversations, such as how far
// they were last filled from a server. Its name is a conversation name.
func (l *Log) Mark(name string) (int64, error) {
	path, err := l.markPath(name)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("history: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("history: mark %s: %w", name, err)
	}
	return v, nil
}

// SetMark sets a mark (written whole, or not at all).
func (l *Log) SetMark(name string, v int64) error {
	path, err := l.markPath(name)
	if err != nil {
		return err
	}
	return replaceFile(path, []byte(strconv.FormatInt(v, 10)+"\n"))
}

// markPath is <dir>/.<name>.mark: never a conversation's file (those do
// not start with a dot).
func (l *Log) markPath(name string) (string, error) {
	if err := checkConv(name); err != nil {
		return "", err
	}
	if err := l.checkOpen(); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, "."+name+".mark"), nil
}

package history

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// ErrClosed is returned by every method of a closed Log.
var ErrClosed = errors.New("history: log closed")

// Log is the history of one user: the files of one folder. It is safe for
// concurrent use by several goroutines, and appends are safe against other
// processes appending to the same files (each append holds flock on the file).
//
// Lock order: Log.mu, then convFile.mu, then the flock of that file.
type Log struct {
	dir string

	mu     sync.Mutex
	files  map[string]*convFile // by conversation name
	closed bool
}

// Open returns the Log of dir, creating dir and its missing parents with mode
// 0700. Existing folders keep their mode.
func Open(dir string) (*Log, error) {
	if dir == "" {
		return nil, errors.New("history: empty folder name")
	}
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}
	return &Log{dir: dir, files: make(map[string]*convFile)}, nil
}

// Path returns the file of a conversation, <dir>/<conv>.log, or "" when conv
// is not a valid conversation name.
func (l *Log) Path(conv string) string {
	if checkConv(conv) != nil {
		return ""
	}
	return filepath.Join(l.dir, conv+".log")
}

// Append writes r at the end of the conversation's file, creating the file
// (mode 0600) if needed. added is false, and nothing is written, when a
// record with r.ID is already in the file, whoever wrote it. It blocks while
// another process appends to the same file.
func (l *Log) Append(conv string, r Record) (added bool, err error) {
	if err := checkRecord(r); err != nil {
		return false, err
	}
	f, err := l.file(conv)
	if err != nil {
		return false, err
	}
	return f.append(appendLine(nil, r), r.ID)
}

// Has reports whether a record with this id is in the conversation's file.
// A missing file holds nothing; Has never creates one.
func (l *Log) Has(conv string, id int64) (bool, error) {
	f, err := l.file(conv)
	if err != nil {
		return false, err
	}
	return f.has(id)
}

// Read returns the last n records of a conversation in file order, or all of
// them when n <= 0. Malformed lines, and a last line torn by a killed
// writer, are skipped. A conversation without a file has no records.
func (l *Log) Read(conv string, n int) ([]Record, error) {
	if err := checkConv(conv); err != nil {
		return nil, err
	}
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	return readFile(filepath.Join(l.dir, conv+".log"), n)
}

// Search returns the last n records of a conversation (all of them when
// n <= 0) for which match is true, in file order. It reads the whole file
// once; memory is bounded by n and the longest line.
func (l *Log) Search(conv string, n int, match func(Record) bool) ([]Record, error) {
	if err := checkConv(conv); err != nil {
		return nil, err
	}
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	var recs []Record
	err := withFile(filepath.Join(l.dir, conv+".log"), func(f *os.File, size int64) (err error) {
		_, err = eachRecord(f, 0, size, func(r Record) {
			if !match(r) {
				return
			}
			if n > 0 && len(recs) == n {
				copy(recs, recs[1:])
				recs = recs[:n-1]
			}
			recs = append(recs, r)
		})
		return err
	})
	return recs, err
}

// Conversations returns the sorted names of the conversations that have a
// file. Files whose names are not <valid conversation>.log are ignored.
func (l *Log) Conversations() ([]string, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var convs []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if ok && e.Type().IsRegular() && checkConv(name) == nil {
			convs = append(convs, name)
		}
	}
	slices.Sort(convs)
	return convs, nil
}

// Close closes the files of the Log. It waits for appends in progress; later
// calls of any method return ErrClosed. Closing twice is not an error.
func (l *Log) Close() error {
	l.mu.Lock()
	files := l.files
	l.files, l.closed = nil, true
	l.mu.Unlock()

	var errs []error
	for _, f := range files {
		errs = append(errs, f.close())
	}
	return errors.Join(errs...)
}

func (l *Log) checkOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// file returns the state of a conversation's file, made on first use.
func (l *Log) file(conv string) (*convFile, error) {
	if err := checkConv(conv); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	f := l.files[conv]
	if f == nil {
		f = &convFile{path: filepath.Join(l.dir, conv+".log")}
		l.files[conv] = f
	}
	return f, nil
}

// readFile reads the records of one file under a shared flock, so that no
// append or truncation is in progress while it reads.
func readFile(path string, n int) ([]Record, error) {
	var recs []Record
	err := withFile(path, func(f *os.File, size int64) (err error) {
		if n > 0 {
			recs, err = readTail(f, size, n)
			return err
		}
		_, err = eachRecord(f, 0, size, func(r Record) { recs = append(recs, r) })
		return err
	})
	return recs, err
}

// withFile runs read on the file at path, opened and under a shared flock;
// a file that does not exist holds nothing (read is not called).
func withFile(path string, read func(f *os.File, size int64) error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	if err := lockFile(f, false); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer unlockFile(f)
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := read(f, fi.Size()); err != nil {
		return fmt.Errorf("history: read %s: %w", path, err)
	}
	return nil
}

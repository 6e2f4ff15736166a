package dedupe

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Journal keeps client ids where a killed server finds them again: a
// ring of fixed-size records in a file (sent.ring) that the server maps
// into its memory. Appending a record is a copy into the mapping, no
// system call: the page is the kernel's page cache, so once the copy is
// done a SIGKILL cannot undo it, and the message may be shown. A power cut
// of the server's host can lose what the kernel had not yet written back:
// that is not covered.
//
// The ring holds the latest ringRecords records (the oldest are
// overwritten); each record carries a checksum, so a record torn by a kill
// in the middle of its copy is skipped when read back. The page cache
// writes the ring back in place: it costs the disk at most its size per
// write-back period, however many messages pass, where an append-only
// file costs every record's bytes.
//
// Where memory mapping is not available (or fails) the records go to the
// same file with one pwrite each: slower, the same format.
type Journal struct {
	f      *os.File
	mem    []byte // the mapping; nil when records are written with pwrite
	slots  uint64
	head   atomic.Uint64 // the next record's number; its slot is head % slots
	closed atomic.Bool
	failed atomic.Bool // a write failed (reported once)
}

// Entry is one record of the journal.
type Entry struct {
	Sender int64
	CID    string
	ID     int64
	To     int64  // the recipient, 0 for a group message
	Group  string // "#name" for a group message
	Time   time.Time
}

const (
	recordSize    = 128
	recordVersion = 1
	maxCID        = 32
	maxGroup      = 33 // "#" and 32 characters
)

// ringRecords is how many records the ring holds (a variable for tests):
// 32768 records of 128 bytes, a 4 MiB file.
var ringRecords = 32768

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenJournal opens the journal in dir (sent.ring, creating it) and
// returns what it holds that is younger than keep, oldest first. The
// line-per-entry files of earlier versions (sent.log, sent.log.1) are
// read, taken into the ring and removed.
func OpenJournal(dir string, keep time.Duration, now time.Time) (*Journal, []Entry, error) {
	since := now.Add(-keep)
	var old []Entry
	oldFiles := []string{filepath.Join(dir, "sent.log.1"), filepath.Join(dir, "sent.log")}
	for _, p := range oldFiles {
		e, err := readLines(p, since)
		if err != nil {
			return nil, nil, err
		}
		old = append(old, e...)
	}
	path := filepath.Join(dir, "sent.ring")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("client id journal: %w", err)
	}
	size := int64(ringRecords) * recordSize
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, fmt.Errorf("client id journal: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("client id journal: %w", err)
	}
	j := &Journal{f: f, slots: uint64(ringRecords)}
	entries, newest := readRing(data[:n])
	j.head.Store(newest)
	j.mem = mapFile(f, int(size)) // nil: pwrite instead
	var kept []Entry
	for _, e := range entries {
		if !e.Time.Before(since) {
			kept = append(kept, e)
		}
	}
	for _, e := range old {
		j.Append(e)
	}
	kept = append(old, kept...)
	for _, p := range oldFiles {
		os.Remove(p)
	}
	return j, kept, nil
}

// readRing returns the valid records of a ring in the order they were
// appended, and the number to give the next record: after the newest's.
func readRing(data []byte) ([]Entry, uint64) {
	type numbered struct {
		seq uint64
		e   Entry
	}
	var all []numbered
	for off := 0; off+recordSize <= len(data); off += recordSize {
		if e, seq, ok := decodeRecord(data[off : off+recordSize]); ok {
			all = append(all, numbered{seq, e})
		}
	}
	if len(all) == 0 {
		return nil, 0
	}
	slices.SortFunc(all, func(a, b numbered) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]Entry, len(all))
	for i, a := range all {
		out[i] = a.e
	}
	return out, all[len(all)-1].seq + 1
}

// A record: crc32c of the rest (4 bytes), version, client id length,
// group length, 0, then sender, msgid, recipient, time (unix ms) and the
// record's number (8 bytes each, little endian), the client id (32
// bytes) and the group name (33 bytes), zero-padded.
const seqAt = 112

// encodeRecord fills r (recordSize bytes) with e, the seq'th record;
// false when e does not fit (a client id or group name longer than the
// protocol allows).
func encodeRecord(r []byte, e Entry, seq uint64) bool {
	if len(e.CID) == 0 || len(e.CID) > maxCID || len(e.Group) > maxGroup {
		return false
	}
	clear(r)
	r[4], r[5], r[6] = recordVersion, byte(len(e.CID)), byte(len(e.Group))
	binary.LittleEndian.PutUint64(r[8:], uint64(e.Sender))
	binary.LittleEndian.PutUint64(r[16:], uint64(e.ID))
	binary.LittleEndian.PutUint64(r[24:], uint64(e.To))
	binary.LittleEndian.PutUint64(r[32:], uint64(e.Time.UnixMilli()))
	copy(r[40:40+maxCID], e.CID)
	copy(r[72:72+maxGroup], e.Group)
	binary.LittleEndian.PutUint64(r[seqAt:], seq)
	binary.LittleEndian.PutUint32(r[0:], crc32.Checksum(r[4:], castagnoli))
	return true
}

func decodeRecord(r []byte) (Entry, uint64, bool) {
	if r[4] != recordVersion || binary.LittleEndian.Uint32(r[0:]) != crc32.Checksum(r[4:recordSize], castagnoli) {
		return Entry{}, 0, false
	}
	cl, gl := int(r[5]), int(r[6])
	if cl == 0 || cl > maxCID || gl > maxGroup {
		return Entry{}, 0, false
	}
	e := Entry{
		Sender: int64(binary.LittleEndian.Uint64(r[8:])),
		ID:     int64(binary.LittleEndian.Uint64(r[16:])),
		To:     int64(binary.LittleEndian.Uint64(r[24:])),
		Time:   time.UnixMilli(int64(binary.LittleEndian.Uint64(r[32:]))),
		CID:    string(r[40 : 40+cl]),
		Group:  string(r[72 : 72+gl]),
	}
	if e.Sender <= 0 || e.ID <= 0 {
		return Entry{}, 0, false
	}
	return e, binary.LittleEndian.Uint64(r[seqAt:]), true
}

// Append records e. Safe for concurrent use; with the mapping it makes
// no system call. The error is reported only for the first failure.
func (j *Journal) Append(e Entry) error {
	if j.closed.Load() {
		return nil
	}
	var r [recordSize]byte
	seq := j.head.Add(1) - 1
	if !encodeRecord(r[:], e, seq) {
		return nil // never taken by the protocol: nothing to recognise
	}
	off := int64(seq%j.slots) * recordSize
	if j.mem != nil {
		copy(j.mem[off:off+recordSize], r[:])
		return nil
	}
	if _, err := j.f.WriteAt(r[:], off); err != nil && j.failed.CompareAndSwap(false, true) {
		return fmt.Errorf("client id journal: %w", err)
	}
	return nil
}

// Close unmaps and closes the journal; later Appends do nothing.
func (j *Journal) Close() error {
	if !j.closed.CompareAndSwap(false, true) {
		return nil
	}
	if j.mem != nil {
		unmap(j.mem)
		j.mem = nil
	}
	return j.f.Close()
}

// readLines reads a journal file of an earlier version (one line per
// entry: "<sender> <cid> <msgid> <target> <unix-ms>", target being the
// recipient's id or "#group") since since; lines it cannot read are
// skipped.
func readLines(path string, since time.Time) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client id journal: %w", err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 5 {
			continue
		}
		sender, err1 := strconv.ParseInt(fl[0], 10, 64)
		id, err2 := strconv.ParseInt(fl[2], 10, 64)
		ms, err3 := strconv.ParseInt(fl[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		e := Entry{Sender: sender, CID: fl[1], ID: id, Time: time.UnixMilli(ms)}
		if strings.HasPrefix(fl[3], "#") {
			e.Group = fl[3]
		} else if e.To, err = strconv.ParseInt(fl[3], 10, 64); err != nil {
			continue
		}
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("client id journal %s: %w", path, err)
	}
	return out, nil
}

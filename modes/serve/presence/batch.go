package presence

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"qchat/protocol"
)

// States a user can be in.
const (
	Online  = "online"
	Away    = "away"
	Offline = "offline"
)

// Change is a user's presence as a batch carries it.
type Change struct {
	User  int64
	Nick  string
	State string // Online, Away or Offline
	Text  string // the away text, else the status line; "" for none
}

// Batch is the changes of one interval, at most one per user, in the
// order the users first changed.
type Batch struct {
	Version uint64 // set by Log.Add: the version this batch brings a watcher to
	Changes []Change
}

// Counts says how many of the batch's users are now online, away and
// offline.
func (b *Batch) Counts() (online, away, offline int) {
	for _, c := range b.Changes {
		switch c.State {
		case Online:
			online++
		case Away:
			away++
		default:
			offline++
		}
	}
	return
}

// AppendLine appends c as the PRESENCE event a client reads.
func AppendLine(dst []byte, c Change) []byte {
	if c.Text == "" {
		return protocol.AppendEvent(dst, "PRESENCE", strconv.FormatInt(c.User, 10), c.Nick, c.State)
	}
	return protocol.AppendEvent(dst, "PRESENCE", strconv.FormatInt(c.User, 10), c.Nick, c.State, c.Text)
}

// AppendSummary appends the PRESENCES event that stands for a batch too
// big to send line by line: since is the version before it (LIST <since>
// lists what changed), and the counts of the changes the watcher may see.
func AppendSummary(dst []byte, since uint64, online, away, offline int) []byte {
	return protocol.AppendEvent(dst, "PRESENCES", strconv.FormatUint(since, 10),
		strconv.Itoa(online), strconv.Itoa(away), strconv.Itoa(offline))
}

// AppendBatch encodes b for another node: a first line "BATCH <version>
// <count>", then one PRESENCE line per change, as clients read them.
func AppendBatch(dst []byte, b Batch) []byte {
	dst = append(dst, "BATCH "...)
	dst = strconv.AppendUint(dst, b.Version, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(b.Changes)), 10)
	dst = append(dst, '\n')
	for _, c := range b.Changes {
		dst = AppendLine(dst, c)
	}
	return dst
}

// MaxBatch bounds the changes ParseBatch takes: more users than any node
// holds.
const MaxBatch = 1 << 20

var errBatch = errors.New("presence batch")

// ParseBatch decodes what AppendBatch wrote. It refuses anything else
// whole: a wrong header, count or line, a state it does not know, a user
// twice.
func ParseBatch(data []byte) (Batch, error) {
	head, rest, ok := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(head)
	if !ok || len(f) != 3 || string(f[0]) != "BATCH" {
		return Batch{}, fmt.Errorf("%w: no BATCH header", errBatch)
	}
	v, err1 := strconv.ParseUint(string(f[1]), 10, 64)
	n, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil || n < 0 || n > MaxBatch {
		return Batch{}, fmt.Errorf("%w: bad header %q", errBatch, protocol.Clip(string(head), 40))
	}
	b := Batch{Version: v, Changes: make([]Change, 0, min(n, 1024))}
	seen := make(map[int64]bool, min(n, 1024))
	for len(rest) > 0 {
		var line []byte
		line, rest, ok = bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return Batch{}, fmt.Errorf("%w: last line not ended", errBatch)
		}
		l, err := protocol.ParseLine(line)
		if err != nil || l.Kind != "PRESENCE" {
			return Batch{}, fmt.Errorf("%w: line %d is not a PRESENCE event", errBatch, len(b.Changes)+1)
		}
		id, ok := protocol.ParseID(l.Args[0])
		if !ok || seen[id] || l.Args[1] == "" ||
			(l.Args[2] != Online && l.Args[2] != Away && l.Args[2] != Offline) {
			return Batch{}, fmt.Errorf("%w: line %d: bad user, nickname or state", errBatch, len(b.Changes)+1)
		}
		if len(b.Changes) == n {
			return Batch{}, fmt.Errorf("%w: more than %d changes", errBatch, n)
		}
		seen[id] = true
		c := Change{User: id, Nick: l.Args[1], State: l.Args[2]}
		if len(l.Args) > 3 {
			c.Text = l.Args[3]
		}
		b.Changes = append(b.Changes, c)
	}
	if len(b.Changes) != n {
		return Batch{}, fmt.Errorf("%w: %d changes, header says %d", errBatch, len(b.Changes), n)
	}
	return b, nil
}

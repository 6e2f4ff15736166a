package history

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Record is one message in a conversation.
type Record struct {
	Time time.Time // when the server accepted it; stored in UTC with millisecond precision
	ID   int64     // server message id; unique within a conversation; 0 is not allowed
	Out  bool      // true: sent by me; false: received
	From int64     // sender's numeric user id
	Nick string    // sender's nickname at the time
	Text string    // the text, any bytes; stored escaped, read back exactly
}

// ErrRecord is returned (wrapped) by Append for a record that cannot be
// stored: a zero ID or a time outside the years 1 to 9999.
var ErrRecord = errors.New("history: invalid record")

var errLine = errors.New("malformed history line")

// timeLayout is RFC 3339 with milliseconds; in UTC the zone prints as Z.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func checkRecord(r Record) error {
	if r.ID == 0 {
		return fmt.Errorf("%w: id 0", ErrRecord)
	}
	if y := r.Time.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: year %d", ErrRecord, y)
	}
	return nil
}

// appendLine appends the line of r, '\n' included, to b. r must have passed
// checkRecord.
func appendLine(b []byte, r Record) []byte {
	b = r.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '\t')
	b = strconv.AppendInt(b, r.ID, 10)
	if r.Out {
		b = append(b, "\tout\t"...)
	} else {
		b = append(b, "\tin\t"...)
	}
	b = strconv.AppendInt(b, r.From, 10)
	b = append(b, '\t')
	b = appendEscaped(b, r.Nick)
	b = append(b, '\t')
	b = appendEscaped(b, r.Text)
	return append(b, '\n')
}

// parseLine reads one line without its '\n' (a trailing '\r' is ignored).
// It accepts any RFC 3339 time and normalises it to UTC milliseconds, so that
// a record it returns formats to a line that parses to the same record.
func parseLine(line []byte) (Record, error) {
	s := strings.TrimSuffix(string(line), "\r")
	var f [6]string
	for i := range 5 {
		var ok bool
		if f[i], s, ok = strings.Cut(s, "\t"); !ok {
			return Record{}, errLine
		}
	}
	f[5] = s
	if strings.IndexByte(s, '\t') >= 0 {
		return Record{}, errLine
	}

	var r Record
	var err error
	t, err := time.Parse(time.RFC3339, f[0])
	if err != nil {
		return Record{}, errLine
	}
	r.Time = t.UTC().Truncate(time.Millisecond)
	if r.ID, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return Record{}, errLine
	}
	switch f[2] {
	case "in":
	case "out":
		r.Out = true
	default:
		return Record{}, errLine
	}
	if r.From, err = strconv.ParseInt(f[3], 10, 64); err != nil {
		return Record{}, errLine
	}
	if r.Nick, err = unescape(f[4]); err != nil {
		return Record{}, errLine
	}
	if r.Text, err = unescape(f[5]); err != nil {
		return Record{}, errLine
	}
	if checkRecord(r) != nil {
		return Record{}, errLine
	}
	return r, nil
}

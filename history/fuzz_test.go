package history

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzRecord checks the file format from both ends. Any text and nickname
// escape to one clean field that unescapes to exactly the input, and a
// record with them is written as one line that parses back to the same
// record. Any line, as a damaged or hostile file may hold, parses without
// panic, and what parses is written back to the same record.
//
//	go test -run='^$' -fuzz=FuzzRecord -fuzztime=30s ./history/
func FuzzRecord(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, []byte(nil), int64(17), int64(1700000000123))
	}
	for _, line := range []string{
		"2026-11-22T10:00:01.123Z\t17\tin\t1000\talice\thello world",
		"2026-11-22T10:00:01.123Z\t18\tout\t1001\t小明\t你好 🙂\\t\\n\\\\ \\x1b[2J \\u202e \\xff\r",
		"2026-11-22T18:00:01.123456+08:00\t19\tin\t-5\t\\u0085\t",
		"2026-11-22T10:00:01.123Z\t0\tin\t1000\talice\tid zero",
		"2026-11-22T10:00:01.123Z\t20\tin\t1000\talice\tbad \\q",
		"2026-11-22T10:00:01.123Z\t21\tin\t1000\talice\t\\ud800",
		"2026-11-22T10:00:01.123Z\t22\tin\t1000\talice\ttrailing \\",
		"2026-11-22T10:00:01.123Z\t23\tin\t1000\talice\ttoo\tmany",
		"9999-12-31T23:59:59.999-01:00\t24\tin\t1\tx\tyear 10000 in UTC",
		"2026-11-22T10:00:01.123Z\t+25\tin\t+1\tx\tplus signs",
		"garbage",
		"",
	} {
		f.Add("", []byte(line), int64(1), int64(0))
	}
	f.Fuzz(func(t *testing.T, text string, line []byte, id int64, ms int64) {
		// Escaping any text.
		esc := appendEscaped(nil, text)
		if !utf8.Valid(esc) {
			t.Fatalf("appendEscaped(%q) = %q: invalid UTF-8", text, esc)
		}
		for _, r := range string(esc) {
			if r < 0x20 || r == 0x7f || hiddenRune(r) {
				t.Fatalf("appendEscaped(%q) = %q: holds %U", text, esc, r)
			}
		}
		if back, err := unescape(string(esc)); err != nil || back != text {
			t.Fatalf("unescape(appendEscaped(%q)) = %q, %v", text, back, err)
		}

		// A record holding it.
		r := Record{Time: time.UnixMilli(ms).In(time.FixedZone("X", int(id%50000))), ID: id, Out: ms%2 == 0, From: ms, Nick: text, Text: text}
		if checkRecord(r) == nil {
			want := r
			want.Time = r.Time.UTC()
			checkWrites(t, want)
		}

		// Any line.
		got, err := parseLine(line)
		if err != nil {
			return
		}
		if got.ID == 0 || got.Time.Location() != time.UTC || !got.Time.Equal(got.Time.Truncate(time.Millisecond)) {
			t.Fatalf("parseLine(%q) = %+v: id 0, or time not UTC milliseconds", line, got)
		}
		checkWrites(t, got)
	})
}

// checkWrites fails t unless r is written as one line of six fields that
// parses back to r.
func checkWrites(t *testing.T, r Record) {
	t.Helper()
	b := appendLine(nil, r)
	if bytes.IndexByte(b, '\n') != len(b)-1 || bytes.Count(b, []byte{'\t'}) != 5 || strings.ContainsAny(string(b[:len(b)-1]), "\r\x00") {
		t.Fatalf("appendLine(%+v) = %q: not one line of six fields", r, b)
	}
	back, err := parseLine(b[:len(b)-1])
	same := back.Time.Equal(r.Time)
	back.Time = r.Time
	if err != nil || !same || back != r {
		t.Fatalf("round trip %+v -> %q -> %+v, %v", r, b, back, err)
	}
}

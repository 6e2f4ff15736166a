package client

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"qchat/history"
)

func openHistory(t *testing.T, dir string) *history.Log {
	t.Helper()
	h, err := history.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Each step hands the Recorder one durable event; the server then reads
// its ACK (every event is acknowledged, duplicates too).
func TestRecorderDedupe(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	msg := func(kind string, id, from int64, group, text string) Message {
		return Message{Kind: kind, ID: id, From: from, FromNick: "bob", Time: at, Group: group, Text: text}
	}
	type step struct {
		m       Message
		restart bool // a new Recorder first (a new run of the program)
		isNew   bool
	}
	for _, tc := range []struct {
		name    string
		history bool
		steps   []step
	}{
		{"history", true, []step{
			{m: msg("MSG", 7, 1001, "", "hello"), isNew: true},
			{m: msg("MSG", 7, 1001, "", "hello"), isNew: false},
			{m: msg("MSG", 8, 1001, "", "second"), isNew: true},
			{m: msg("GMSG", 9, 1001, "#dev", "to the group"), isNew: true},
			{m: msg("GMSG", 9, 1001, "#dev", "to the group"), isNew: false},
			// the history knows what was shown before a restart
			{m: msg("MSG", 7, 1001, "", "hello"), restart: true, isNew: false},
			{m: msg("GMSG", 9, 1001, "#dev", "to the group"), isNew: false},
			{m: msg("MSG", 10, 1002, "", "from carol"), isNew: true},
			// requests and notices: in memory only
			{m: msg("REQUEST", 11, 1001, "", "friend"), isNew: true},
			{m: msg("REQUEST", 11, 1001, "", "friend"), isNew: false},
			{m: msg("NOTICE", 12, 1001, "#dev", "kicked"), isNew: true},
			{m: msg("REQUEST", 11, 1001, "", "friend"), restart: true, isNew: true},
		}},
		{"memory", false, []step{
			{m: msg("MSG", 7, 1001, "", "hello"), isNew: true},
			{m: msg("MSG", 7, 1001, "", "hello"), isNew: false},
			{m: msg("GMSG", 9, 1001, "#dev", "x"), isNew: true},
			{m: msg("REQUEST", 11, 1001, "", "friend"), isNew: true},
			{m: msg("REQUEST", 11, 1001, "", "friend"), isNew: false},
			// without history a new run shows it again (nothing remembers)
			{m: msg("MSG", 7, 1001, "", "hello"), restart: true, isNew: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, sc := dialFake(t)
			dir := t.TempDir()
			newRecorder := func() *Recorder {
				if !tc.history {
					return &Recorder{}
				}
				return &Recorder{Hist: openHistory(t, dir)}
			}
			r := newRecorder()
			for i, st := range tc.steps {
				if st.restart {
					if r.Hist != nil {
						r.Hist.Close()
					}
					r = newRecorder()
				}
				shown := 0
				isNew, err := r.Receive(c, st.m, func(got Message) {
					shown++
					if got != st.m {
						t.Errorf("step %d: shown %+v, want %+v", i, got, st.m)
					}
				})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if isNew != st.isNew || shown != map[bool]int{true: 1, false: 0}[st.isNew] {
					t.Errorf("step %d (%s %d): new %v, shown %d times; want new %v", i, st.m.Kind, st.m.ID, isNew, shown, st.isNew)
				}
				if got, want := sc.Next(t), "ACK "+strconv.FormatInt(st.m.ID, 10); got != want {
					t.Errorf("step %d: server read %q, want %q", i, got, want)
				}
			}
			if !tc.history {
				return
			}
			// Each message is in its conversation's file exactly once.
			h := openHistory(t, dir)
			for conv, want := range map[string][]int64{"1001": {7, 8}, "#dev": {9}, "1002": {10}} {
				recs, err := h.Read(conv, 0)
				if err != nil {
					t.Fatal(err)
				}
				var ids []int64
				for _, rec := range recs {
					ids = append(ids, rec.ID)
					if rec.Out {
						t.Errorf("%s: received message %d recorded as sent", conv, rec.ID)
					}
				}
				if !slices.Equal(ids, want) {
					t.Errorf("history of %s holds %v, want %v", conv, ids, want)
				}
			}
			// Requests and notices never go to a file.
			if entries, _ := os.ReadDir(dir); len(entries) != 3 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("history files %v, want the three conversations", names)
			}
		})
	}
}

// A history write that fails still acknowledges: the message was shown,
// and the server must not send it again.
func TestRecorderAcksWhenHistoryFails(t *testing.T) {
	c, sc := dialFake(t)
	r := &Recorder{Hist: openHistory(t, t.TempDir())}
	bad := Message{Kind: "MSG", ID: 7, From: 1001, FromNick: "bob", Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), Text: "year 0"}
	shown := false
	isNew, err := r.Receive(c, bad, func(Message) { shown = true })
	if !isNew || !shown || err == nil {
		t.Errorf("Receive = %v, %v (shown %v); want new, shown, and the history error", isNew, err, shown)
	}
	if got := sc.Next(t); got != "ACK 7" {
		t.Errorf("server read %q, want ACK 7", got)
	}
}

func TestRecordSent(t *testing.T) {
	me := User{1000, "alice"}
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	if err := (&Recorder{}).RecordSent(me, Sent{ID: 7, To: 1001, Time: at}, "x"); err != nil {
		t.Errorf("RecordSent without history: %v", err)
	}
	dir := t.TempDir()
	r := &Recorder{Hist: openHistory(t, dir)}
	for _, s := range []Sent{
		{ID: 7, Status: "stored", To: 1001, Time: at},
		{ID: 7, Status: "stored", To: 1001, Time: at}, // twice: kept once
		{ID: 8, Status: "delivered", Group: "#dev", Time: at},
	} {
		if err := r.RecordSent(me, s, "text "+ansi); err != nil {
			t.Fatal(err)
		}
	}
	for conv, n := range map[string]int{"1001": 1, "#dev": 1} {
		recs, err := r.Hist.Read(conv, 0)
		if err != nil || len(recs) != n {
			t.Fatalf("history of %s: %+v, %v", conv, recs, err)
		}
		if rec := recs[0]; !rec.Out || rec.From != 1000 || rec.Nick != "alice" || rec.Text != "text "+ansi {
			t.Errorf("history of %s: %+v", conv, rec)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "1001.log")); err != nil {
		t.Error(err)
	}
}
